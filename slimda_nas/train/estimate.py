"""How long a training run will take on this machine, measured before it starts: a few real
training steps of the configured bank on random batches of the configured shape, for each phase
the run has (adaptation, and the teacher stage with its one pass over every training image)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from slimda_nas.methods import build_method
from slimda_nas.space import SearchSpace
from slimda_nas.train.config import RunConfig
from slimda_nas.train.distributed import resolve_device
from slimda_nas.train.optim import build_optimizer
from slimda_nas.train.sandwich import sample_model_batch
from slimda_nas.train.session import sandwich_costs, training_bank
from slimda_nas.train.step import BankStep
from slimda_nas.train.teacher import VIEWS, TeacherStep, teacher_outputs


@dataclass(frozen=True)
class PhaseTiming:
    """Seconds per iteration of one phase (the median of the timed steps after one untimed)."""

    phase: str  # "adaptation" or "teacher"
    seconds_per_iteration: float
    iterations: int
    models_per_step: int


@dataclass(frozen=True)
class StepTiming:
    """A run's measured phases, on ``threads`` threads of ``device``."""

    phases: tuple[PhaseTiming, ...]
    steps: int
    threads: int
    device: str
    cache_seconds: float = 0.0  # the teacher's pass over every training image, both views

    @property
    def total_seconds(self) -> float:
        """Training steps and the teacher's pass: data decoding, evaluations and checkpoints
        come on top."""
        return (
            sum(p.seconds_per_iteration * p.iterations for p in self.phases) + self.cache_seconds
        )


def _median_seconds(step: Callable[[int], None], steps: int, device: torch.device) -> float:
    """Median time of ``step(it)`` over ``steps`` calls after an untimed first one (which pays
    for allocations and lazy set-up)."""
    times = []
    for it in range(steps + 1):
        t0 = time.perf_counter()
        step(it)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if it:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def time_training_steps(
    cfg: RunConfig, space: SearchSpace, num_classes: int, steps: int = 3, images: int = 0
) -> StepTiming:
    """Time ``steps`` + 1 training steps of each phase of ``cfg``'s bank (its method, batch size,
    models per step, domain BN and optimizer; random initial weights and inputs, which cost the
    same) and, with a teacher stage, its forward pass over ``images`` training images (source
    and target). Nothing is written; the global RNG state is left as it was."""
    if steps < 1:
        raise ValueError(f"steps: expected a positive integer, got {steps}")
    device = resolve_device(cfg.device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        method = build_method(cfg.method, **vars(cfg.distillation))
        bank = training_bank(cfg, space, method, num_classes, device)
        model = bank.model.train()
        macs_of, floor = sandwich_costs(cfg, bank)
        channels_last = cfg.uses_channels_last(device.type)
        optimizer = build_optimizer(model, cfg)
        separate = cfg.domain_bn == "separate"
        n = cfg.batch_size
        x_src = torch.randn(n, *space.input_shape, device=device)
        x_tgt = torch.randn(n, *space.input_shape, device=device)
        y_src = torch.randint(0, num_classes, (n,), device=device)

        def optimize(total: torch.Tensor) -> None:
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()

        adaptation = BankStep(model, method, channels_last, separate_domains=separate)

        def adaptation_step(it: int) -> None:
            configs = sample_model_batch(
                space,
                cfg.models_per_step,
                cfg.seed,
                it,
                cfg.sandwich,
                macs_of=macs_of,
                floor=floor,
            )
            optimize(adaptation(x_src, y_src, x_tgt, [space.setting(c) for c in configs], 0.5)[0])

        phases = [
            PhaseTiming(
                "adaptation",
                _median_seconds(adaptation_step, steps, device),
                cfg.adaptation_end,
                cfg.models_per_step,
            )
        ]
        cache_seconds = 0.0
        if cfg.teacher.iterations:
            # the cache's pass: BN re-estimated per domain on calibration images, then every
            # view of every training image, forward only
            start = time.perf_counter()
            with torch.no_grad():
                model.eval()
                fmt = torch.channels_last if channels_last else torch.contiguous_format
                teacher_src, teacher_tgt = (
                    teacher_outputs(model, x.contiguous(memory_format=fmt)) for x in (x_src, x_tgt)
                )
                model.train()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            per_image = (time.perf_counter() - start) / (2 * n)
            cache_seconds = per_image * (images * VIEWS + 2 * cfg.calibration_images)
            teacher = TeacherStep(model, cfg.teacher, channels_last, separate, method)
            m = cfg.teacher.models_per_step

            def teacher_step(it: int) -> None:
                configs = sample_model_batch(
                    space, m, cfg.seed, it, True, macs_of=macs_of, floor=floor
                )
                widths = [space.setting(c) for c in configs]
                optimize(teacher(x_src, y_src, teacher_src, x_tgt, teacher_tgt, widths)[0])

            seconds = _median_seconds(teacher_step, steps, device)
            phases.append(PhaseTiming("teacher", seconds, cfg.teacher.iterations, m))
    return StepTiming(
        tuple(phases), steps, torch.get_num_threads(), str(device), cache_seconds=cache_seconds
    )
