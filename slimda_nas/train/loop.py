"""``train_bank``: train one SlimDA model bank from a run config, resumable bit for bit.

The loop is a few small steps over one :class:`Session` (what a training process holds):
set up, restore a checkpoint, then per iteration train, log, evaluate and checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from pathlib import Path

import torch

from slimda_nas._check import typed
from slimda_nas._io import atomic_write, check_output_path, exclusive_lock
from slimda_nas.errors import RunError, TrainingDiverged
from slimda_nas.methods import HEADS
from slimda_nas.methods.losses import confusion_lambda
from slimda_nas.train import distributed as D
from slimda_nas.train.averaging import joins_average
from slimda_nas.train.checkpoint import ADAPTED
from slimda_nas.train.config import RunConfig
from slimda_nas.train.metrics import METRICS, adaptation_source
from slimda_nas.train.monitor import accuracy
from slimda_nas.train.optim import phase_at, set_learning_rates
from slimda_nas.train.progress import TrainProgress
from slimda_nas.train.sandwich import open_choices, sample_model_batch
from slimda_nas.train.session import (
    Session,
    adopt,
    check_adapted_from,
    prepare,
    restore,
    save,
    setup,
)
from slimda_nas.train.summary import TrainResult, TrainSummary
from slimda_nas.train.teacher import freeze_teacher, next_views

LOCK = ".train.lock"  # held by the training process of a run folder (rank 0 of torchrun)


@typed
def train_bank(
    cfg: RunConfig,
    *,
    resume: bool | None = None,
    show_progress: bool = True,
    stop_after: int | None = None,
    adapted_from: str | Path | None = None,
) -> TrainResult:
    """Train the bank ``cfg`` describes into ``cfg.run_dir``.

    A run folder that already holds a checkpoint of the same config is resumed (``resume=None``
    or ``True``); ``resume=True`` requires one, ``resume=False`` refuses to touch it. A finished
    run is left as it is. ``stop_after`` ends the call after that many iterations (tests use it
    to simulate a kill).

    ``adapted_from`` (another staged run's folder or its ``adapted.pt``) starts a run that has
    no checkpoint yet where that run's teacher stage began, when the two configs adapt alike
    (``RunConfig.adaptation_hash``): the bank is the one training from scratch gives, without
    repeating the adaptation. A run with a checkpoint resumes from it as always.

    One training process per run folder: a second one (``train`` beside ``train --resume``)
    is refused at once in one line, before it reads anything.
    """
    check_output_path(cfg.run_dir, "run folder", folder=True)  # never a link or a device
    if os.environ.get("RANK", "0") != "0":  # torchrun's other ranks follow rank 0's lock
        return _train(cfg, resume, show_progress, stop_after, adapted_from)
    made = not cfg.run_dir.exists()
    try:
        with exclusive_lock(cfg.run_dir / LOCK, "training"):
            return _train(cfg, resume, show_progress, stop_after, adapted_from)
    finally:
        if made:  # failed before writing anything: leave no folder behind
            discard_unused(cfg.run_dir)


def discard_unused(run_dir: Path, written: tuple[str, ...] = ()) -> None:
    """Remove ``run_dir`` when it holds nothing but its training lock and ``written`` (files
    the caller put there before training, e.g. a generated space): a start that failed."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {LOCK, *written}:
        for p in run_dir.iterdir():
            p.unlink()
        run_dir.rmdir()


def _train(
    cfg: RunConfig,
    resume: bool | None,
    show_progress: bool,
    stop_after: int | None,
    adapted_from: str | Path | None,
) -> TrainResult:
    s = setup(cfg)
    start = restore(s, resume)
    adopted = start == 0 and adapted_from is not None
    if adopted:
        adapted_from = Path(adapted_from).absolute()  # the logs name it wherever one stands
        adapted_path = check_adapted_from(cfg, adapted_from)
        start = adopt(s, adapted_path)
        # lines of an earlier start killed before its first checkpoint
        (cfg.run_dir / METRICS).unlink(missing_ok=True)
    total = cfg.total_iterations
    if start >= total:
        return _finished(s, start)
    prepare(s, start)
    if adopted and s.metrics:
        s.metrics.write({"iteration": start, "adapted_from": str(adapted_from)})
    if adopted and s.dist.is_main:  # its own copy: this run can be the source of another
        with open(adapted_path, "rb") as f:
            atomic_write(cfg.run_dir / ADAPTED, lambda out: shutil.copyfileobj(f, out))
    adapted_at = cfg.adaptation_end if cfg.adaptation_hash() else None  # adapted.pt written
    end = total if stop_after is None else min(total, start + stop_after)
    result = TrainResult(
        run_dir=cfg.run_dir,
        checkpoint=s.ckpt_path,
        iterations=start,
        seconds=0.0,
        resumed_from=start,
        adapted_from=Path(adapted_from) if adopted else None,
        bank=s.bank,
    )
    progress = TrainProgress(
        start,
        total,
        enabled=show_progress and s.dist.is_main,
        title=f"training {cfg.name} ({cfg.method}, {cfg.task})",
    )
    t0 = t_log = time.time()
    s.model.train()
    try:
        with progress:
            for it in range(start, end):
                loss, terms = _train_step(s, it)
                done = it + 1
                _average(s, done)
                progress.update(done, loss)
                if _due(done, cfg.log_every, total) and s.metrics:
                    t_log = _log(s, done, loss, terms, t0, t_log)
                if cfg.eval_every and _due(done, cfg.eval_every, total) and s.labelled:
                    if s.dist.is_main:
                        result.accuracy = _evaluate(s)
                        s.metrics.write({"iteration": done, "eval": result.accuracy})
                        progress.note(_acc_text(done, result.accuracy, s.bank.deploy_head))
                        s.model.train()
                    D.barrier(s.dist)
                if _due(done, cfg.checkpoint_every, total) or done == adapted_at:
                    save(s, done)
                result.iterations = done
    except RuntimeError as e:
        if not s.dist.enabled:
            raise
        # A peer died (killed, out of memory...): stop this rank with a clear line, not a hang.
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise RunError(
            f"rank {s.dist.rank}: lost another training process ({reason}); the last checkpoint "
            f"is {s.ckpt_path}: run the same command again to resume"
        ) from None
    result.seconds = time.time() - t0
    if s.dist.is_main and result.iterations == total:
        source = adaptation_source(cfg.run_dir / METRICS)  # this call's, or a killed one's
        TrainSummary.of(result, s.bank.deploy_head, s.average.count, source).write(cfg.run_dir)
    return result


# -- a run already finished ---------------------------------------------------------------------
def _finished(s: Session, iterations: int) -> TrainResult:
    """A finished run, left as it is: the accuracy its summary recorded."""
    summary = TrainSummary.read(s.cfg.run_dir)
    return TrainResult(
        run_dir=s.cfg.run_dir,
        checkpoint=s.ckpt_path,
        iterations=iterations,
        seconds=0.0,
        resumed_from=iterations,
        accuracy=summary.accuracy_on_target_test if summary else {},
        bank=s.bank,
    )


# -- one iteration --------------------------------------------------------------------------------
def _autocast(s: Session) -> contextlib.AbstractContextManager:
    # bf16 autocast pays on GPUs; on CPUs it is slower than fp32, so it applies to CUDA only.
    if s.cfg.precision == "bf16" and s.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _begin_narrow_training(s: Session, it: int) -> None:
    """Order channels before the first step that trains a narrower model, and freeze the
    teacher's outputs where its stage begins (in that order: the cache holds ordered channels)."""
    cfg = s.cfg
    if cfg.ordering.criterion and it == cfg.ordering_iteration:
        from slimda_nas.slim.ordering import reorder_channels

        perms = reorder_channels(
            s.model, s.model.channel_groups(), cfg.ordering.criterion, s.optimizer
        )
        if s.average.count:
            from slimda_nas.slim.ordering import permute_named

            s.average.state = permute_named(s.average.state, perms)
    if s.views is not None and it == cfg.adaptation_end:
        s.teacher_cache = freeze_teacher(s.bank, s.data, cfg, save=s.dist.is_main)


def _train_step(s: Session, it: int) -> tuple[float, dict[str, torch.Tensor]]:
    """One optimizer step at iteration ``it`` (0-based); (loss, its terms)."""
    cfg = s.cfg
    _begin_narrow_training(s, it)
    phase, p = phase_at(cfg, it)
    set_learning_rates(s.optimizer, cfg, phase, p)
    sh = cfg.shrinking
    open_ = open_choices(s.space, p, sh.stages, sh.fraction, sh.order)
    warmup = phase == "warmup"
    m = cfg.teacher.models_per_step if phase == "teacher" else cfg.models_per_step
    configs = sample_model_batch(
        s.space, m, cfg.seed, it, cfg.sandwich or phase != "adaptation", open_, s.macs_of, s.floor
    )
    widths = [s.space.setting(c) for c in configs]  # widths, depths and resolution
    s.optimizer.zero_grad(set_to_none=True)
    if phase == "teacher":
        batch = next_views(s.views, s.data, s.teacher_cache, cfg.batch_size, s.device)
        total, terms = s.teacher_step(*batch, widths)
    else:
        x_src, y_src = next(s.src)
        x_tgt = next(s.tgt).to(s.device, non_blocking=True) if s.tgt else None
        with _autocast(s):
            total, terms = s.step(
                x_src.to(s.device, non_blocking=True), y_src.to(s.device), x_tgt, widths, p, warmup
            )
    loss = float(total.detach())
    if not D.all_ok(s.dist, math.isfinite(loss), s.device):
        bad = next((k for k, v in terms.items() if not math.isfinite(float(v))), "total")
        raise TrainingDiverged(
            f"iteration {it + 1}: loss term {bad!r} is {float(terms.get(bad, total))}; stopped, "
            f"the last good checkpoint is {s.ckpt_path} (try a lower optimizer.lr)"
        )
    total.backward()
    s.optimizer.step()
    return loss, terms


def _average(s: Session, done: int) -> None:
    """Add the weights after iteration ``done`` to the tail average if due; after the last
    iteration the average becomes the bank (evaluated and checkpointed as the trained run)."""
    cfg, av = s.cfg, s.cfg.averaging
    if not joins_average(av.start, av.every, done - cfg.warmup.iterations, cfg.iterations):
        return
    s.average.update(s.model.state_dict())
    if done == cfg.adaptation_end:
        s.model.load_state_dict(s.average.state)


def _due(done: int, every: int, last: int) -> bool:
    return done % every == 0 or done == last


def _log(s: Session, done: int, loss: float, terms: dict, t0: float, t_log: float) -> float:
    cfg = s.cfg
    now = time.time()
    steps = cfg.log_every if done % cfg.log_every == 0 else done % cfg.log_every
    images_per_step = cfg.batch_size * (2 if s.tgt or s.views else 1) * s.dist.world_size
    phase, p = phase_at(cfg, done - 1)  # the step just taken
    s.metrics.write(
        {
            "iteration": done,
            "phase": phase,
            "loss": loss,
            **{k: float(v) for k, v in terms.items()},
            "lambda": confusion_lambda(p) if phase == "adaptation" else 0.0,
            "lr": s.optimizer.param_groups[1]["lr"],
            "images_per_s": images_per_step * steps / max(now - t_log, 1e-9),
            "time": now - t0,
        }
    )
    return now


def _evaluate(s: Session) -> dict[str, dict[str, float]]:
    """Target-test accuracy of the largest and the sandwich's smallest model, every trained
    head."""
    from slimda_nas.data import eval_batches, fixed_subset

    cfg, data = s.cfg, s.data
    calib_idx = fixed_subset(data.target_train, cfg.calibration_images, seed=cfg.seed)
    test_idx = fixed_subset(data.target_test, cfg.eval_images, seed=cfg.seed + 1)
    calib = [x.to(s.device) for x in eval_batches(data.target_train, 256, calib_idx)]
    heads = [h for h in HEADS if h in s.method.trained_heads]
    return {
        name: accuracy(
            s.bank,
            config,
            calib,
            eval_batches(data.target_test, 256, test_idx, with_labels=True),
            heads,
        )
        for name, config in (("largest", s.space.largest()), ("smallest", s.smallest()))
    }


def _acc_text(it: int, acc: dict, head: str) -> str:
    parts = [
        f"{name} {vals.get(head, next(iter(vals.values()))):.1%}" for name, vals in acc.items()
    ]
    return f"iteration {it}: target accuracy ({head}) " + ", ".join(parts)
