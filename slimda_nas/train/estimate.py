"""How long a training run will take on this machine, measured before it starts: a few real
training steps of the configured bank on random batches of the configured shape."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from slimda_nas.bank import ModelBank
from slimda_nas.methods import HEADS, build_method
from slimda_nas.space import SearchSpace
from slimda_nas.train.config import RunConfig
from slimda_nas.train.distributed import resolve_device
from slimda_nas.train.optim import build_optimizer
from slimda_nas.train.sandwich import sample_model_batch
from slimda_nas.train.step import BankStep


@dataclass(frozen=True)
class StepTiming:
    """Seconds per training iteration (the median of ``steps`` timed steps after one untimed)."""

    seconds_per_iteration: float
    steps: int
    iterations: int
    threads: int
    device: str

    @property
    def total_seconds(self) -> float:
        """Training steps only: data decoding, evaluations and checkpoints come on top."""
        return self.seconds_per_iteration * self.iterations


def time_training_steps(
    cfg: RunConfig, space: SearchSpace, num_classes: int, steps: int = 3
) -> StepTiming:
    """Run ``steps`` + 1 training steps of ``cfg``'s bank (its method, batch size, models per
    step, domain BN and optimizer; random initial weights and inputs, which cost the same) and
    time them. Nothing is written; the global RNG state is left as it was."""
    if steps < 1:
        raise ValueError(f"steps: expected a positive integer, got {steps}")
    device = resolve_device(cfg.device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        method = build_method(cfg.method, **vars(cfg.distillation))
        bank = ModelBank.build(space, num_classes, heads=HEADS)
        model = bank.model.to(device).train()
        for h in HEADS:
            if h not in method.trained_heads:
                getattr(model, h).requires_grad_(False)
        channels_last = cfg.uses_channels_last(device.type)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(model, cfg)
        step = BankStep(model, method, channels_last, separate_domains=cfg.domain_bn == "separate")
        n = cfg.batch_size
        x_src = torch.randn(n, *space.input_shape, device=device)
        x_tgt = torch.randn(n, *space.input_shape, device=device)
        y_src = torch.randint(0, num_classes, (n,), device=device)
        times = []
        for it in range(steps + 1):
            configs = sample_model_batch(space, cfg.models_per_step, cfg.seed, it, cfg.sandwich)
            widths = [space.layer_widths(c) for c in configs]
            t0 = time.perf_counter()
            total, _ = step(x_src, y_src, x_tgt, widths, 0.5)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if it:  # the first step pays for allocations and lazy set-up
                times.append(time.perf_counter() - t0)
    return StepTiming(
        seconds_per_iteration=sorted(times)[len(times) // 2],
        steps=steps,
        iterations=cfg.total_iterations,
        threads=torch.get_num_threads(),
        device=str(device),
    )
