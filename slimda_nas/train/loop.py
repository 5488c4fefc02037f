"""``train_bank``: train one SlimDA model bank from a run config, resumable bit for bit.

The loop is a few small steps over one :class:`_Session` (what a training process holds):
set up, restore a checkpoint, then per iteration train, log, evaluate and checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimda_nas._check import typed
from slimda_nas._io import check_output_path, exclusive_lock, write_json, write_yaml
from slimda_nas.bank import ModelBank
from slimda_nas.errors import CheckpointError, ConfigError, RunError, TrainingDiverged
from slimda_nas.methods import HEADS, Method, build_method
from slimda_nas.methods.inplace import InplaceDistillation
from slimda_nas.methods.losses import confusion_lambda
from slimda_nas.space import SearchSpace, load_space
from slimda_nas.train import distributed as D
from slimda_nas.train.averaging import WeightAverage, joins_average
from slimda_nas.train.checkpoint import (
    CHECKPOINT,
    TrainState,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from slimda_nas.train.config import NOT_TRAINED, RunConfig
from slimda_nas.train.metrics import MetricsLog
from slimda_nas.train.monitor import accuracy
from slimda_nas.train.optim import build_optimizer, phase_at, set_learning_rates
from slimda_nas.train.progress import TrainProgress
from slimda_nas.train.sandwich import open_choices, sample_model_batch
from slimda_nas.train.step import BankStep
from slimda_nas.train.teacher import (
    CACHE,
    VIEWS,
    TeacherCache,
    TeacherStep,
    freeze_teacher,
    next_views,
)

SUMMARY = "train_summary.json"
LOCK = ".train.lock"  # held by the training process of a run folder (rank 0 of torchrun)


@dataclass(kw_only=True)
class TrainResult:
    run_dir: Path
    checkpoint: Path
    iterations: int
    seconds: float
    resumed_from: int = 0
    # "largest"/"smallest" -> head -> accuracy
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    bank: ModelBank | None = None


@dataclass
class _Session:
    """Everything one training process holds."""

    cfg: RunConfig
    device: torch.device
    dist: D.DistInfo
    space: SearchSpace
    data: Any  # TaskData
    method: Method
    bank: ModelBank
    optimizer: torch.optim.Optimizer
    src: Any  # InfiniteLoader
    tgt: Any | None
    warmup: Method | None = None  # in-place distillation before adaptation
    step: nn.Module | None = None
    # the teacher stage: (source, target) streams of view indices, its step and cached targets
    views: tuple[Any, Any] | None = None
    teacher_step: nn.Module | None = None
    teacher_cache: TeacherCache | None = None
    metrics: MetricsLog | None = None
    average: WeightAverage = field(default_factory=WeightAverage)

    @property
    def model(self) -> nn.Module:
        return self.bank.model

    @property
    def ckpt_path(self) -> Path:
        return self.cfg.run_dir / CHECKPOINT

    @property
    def labelled(self) -> bool:
        """The target has labels to report accuracy with (an unlabelled folder has none)."""
        return self.data.target_test.labelled


@typed
def train_bank(
    cfg: RunConfig,
    *,
    resume: bool | None = None,
    show_progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train the bank ``cfg`` describes into ``cfg.run_dir``.

    A run folder that already holds a checkpoint of the same config is resumed (``resume=None``
    or ``True``); ``resume=True`` requires one, ``resume=False`` refuses to touch it. A finished
    run is left as it is. ``stop_after`` ends the call after that many iterations (tests use it
    to simulate a kill).

    One training process per run folder: a second one (``train`` beside ``train --resume``)
    is refused at once in one line, before it reads anything.
    """
    check_output_path(cfg.run_dir, "run folder", folder=True)  # never a link or a device
    if os.environ.get("RANK", "0") != "0":  # torchrun's other ranks follow rank 0's lock
        return _train(cfg, resume, show_progress, stop_after)
    made = not cfg.run_dir.exists()
    try:
        with exclusive_lock(cfg.run_dir / LOCK, "training"):
            return _train(cfg, resume, show_progress, stop_after)
    finally:
        if made and cfg.run_dir.is_dir() and {p.name for p in cfg.run_dir.iterdir()} <= {LOCK}:
            # failed before writing anything: leave no folder behind
            (cfg.run_dir / LOCK).unlink(missing_ok=True)
            cfg.run_dir.rmdir()


def _train(
    cfg: RunConfig, resume: bool | None, show_progress: bool, stop_after: int | None
) -> TrainResult:
    s = _setup(cfg)
    start = _restore(s, resume)
    total = cfg.total_iterations
    if start >= total:
        return _finished(s, start)
    _prepare(s, start)
    end = total if stop_after is None else min(total, start + stop_after)
    result = TrainResult(
        run_dir=cfg.run_dir,
        checkpoint=s.ckpt_path,
        iterations=start,
        seconds=0.0,
        resumed_from=start,
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
                if _due(done, cfg.checkpoint_every, total):
                    _checkpoint(s, done)
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
        _write_summary(s, result, start)
    return result


# -- set-up ---------------------------------------------------------------------------------------
def _setup(cfg: RunConfig) -> _Session:
    """Device, data, method, bank, optimizer and data streams (nothing written yet)."""
    from slimda_nas.data import InfiniteLoader, load_task, resolve_data_root

    device = D.resolve_device(cfg.device)
    dist = D.init_distributed(device)
    space = load_space(cfg.space)
    data = load_task(cfg.task, resolve_data_root(cfg.data_root), space.input_size)
    channels = data.source_train.eval_batch(torch.tensor([0])).shape[1]
    if channels != space.input_channels:
        raise ConfigError(
            f"{cfg.space}: field 'input.channels': {space.input_channels}, but task {cfg.task} gives {channels}"
        )
    method = build_method(cfg.method, **vars(cfg.distillation))
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    bank = ModelBank.build(
        space,
        len(data.classes),
        heads=HEADS,
        weights=cfg.weights,
        classes=data.classes,
        deploy_head=cfg.deploy_head or method.default_deploy_head,
    )
    model = bank.model.to(device)
    for h in HEADS:
        if h not in method.trained_heads:
            getattr(model, h).requires_grad_(False)
    if cfg.uses_channels_last(device.type):
        model.to(memory_format=torch.channels_last)
    seed = cfg.seed * 1000 + 2 * dist.rank
    src = InfiniteLoader(data.source_train, cfg.batch_size, seed=seed)
    warmup = None
    if cfg.warmup.iterations:
        warmup = InplaceDistillation(cfg.warmup.images, cfg.warmup.temperature)
    tgt = None
    if method.uses_target or (warmup is not None and warmup.uses_target):
        tgt = InfiniteLoader(data.target_train, cfg.batch_size, seed=seed + 1, with_labels=False)
    s = _Session(
        cfg, device, dist, space, data, method, bank, build_optimizer(model, cfg), src, tgt, warmup
    )
    if cfg.teacher.iterations:
        from slimda_nas.data import IndexStream

        s.views = tuple(
            IndexStream(len(images) * VIEWS, seed + 2 + k, f"{images.name}/views")
            for k, images in enumerate((data.source_train, data.target_train))
        )
    return s


def _restore(s: _Session, resume: bool | None) -> int:
    """Load the run folder's checkpoint into the session; the iteration to continue from."""
    path, cfg = s.ckpt_path, s.cfg
    if not path.exists():
        if resume:
            raise CheckpointError(f"{path}: no checkpoint to resume from")
        return 0
    if resume is False:
        raise CheckpointError(
            f"{cfg.run_dir}: already holds a trained run; choose another name or resume it"
        )
    state = load_checkpoint(path, space_hash=s.space.hash, backbone=s.space.backbone)
    missing = state.resumable
    if missing:
        raise CheckpointError(
            f"{path}: holds no training state to resume ({', '.join(missing)} missing; "
            "an older or exported checkpoint); use another run name to train afresh"
        )
    if state.config_hash != cfg.training_hash() and not _same_but_space_path(s, state):
        raise CheckpointError(
            f"{path}: was trained with a different config ({_diff(state.config, cfg.to_dict())}); "
            "use another run name"
        )
    try:
        s.model.load_state_dict(state.model)
        s.optimizer.load_state_dict(state.optimizer)
    except (RuntimeError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{path}: its weights do not fit this bank ({str(e).strip().splitlines()[0][:160]}); "
            "restore the file or use another run name"
        ) from None
    if len(state.ranks) != s.dist.world_size:
        raise CheckpointError(
            f"{path}: written by {len(state.ranks)} process(es); resume with the same number "
            f"(now {s.dist.world_size}) so every data stream continues where it stopped"
        )
    mine = state.ranks[s.dist.rank]
    s.src.load_state_dict(mine["loaders"]["source"])
    if s.tgt is not None:
        s.tgt.load_state_dict(mine["loaders"]["target"])
    if s.views is not None and mine["loaders"].get("views"):
        for stream, saved in zip(s.views, mine["loaders"]["views"], strict=True):
            stream.load_state_dict(saved)
    restore_rng(mine["rng"])
    if state.average is not None:
        s.average = WeightAverage.from_state_dict(state.average, s.device)
    return state.iteration


def _same_but_space_path(s: _Session, state: TrainState) -> bool:
    """The same config given from another folder: the space file is named by another path,
    but its content is the one trained (a space is its content, not where it lies)."""
    trained_path = state.config.get("space")
    if state.space_hash != s.space.hash or not isinstance(trained_path, str):
        return False
    return dataclasses.replace(s.cfg, space=trained_path).training_hash() == state.config_hash


def _prepare(s: _Session, start: int) -> None:
    """The step module (DDP, compiled), the metrics log and ``run.yaml``."""
    step = BankStep(
        s.model,
        s.method,
        s.cfg.uses_channels_last(s.device.type),
        warmup=s.warmup,
        separate_domains=s.cfg.domain_bn == "separate",
    )
    if s.dist.enabled:
        ddp_kwargs = {"device_ids": [s.device.index]} if s.device.type == "cuda" else {}
        step = nn.parallel.DistributedDataParallel(step, **ddp_kwargs)
    if s.cfg.compile:
        step = torch.compile(step)
    s.step = step
    if s.views is not None:
        s.teacher_step = TeacherStep(
            s.model,
            s.cfg.teacher,
            s.cfg.uses_channels_last(s.device.type),
            s.cfg.domain_bn == "separate",
        )
        if start > s.cfg.adaptation_end:  # resumed inside the stage: the targets it began with
            s.teacher_cache = TeacherCache.load(s.cfg.run_dir / CACHE, s.cfg.training_hash())
    s.cfg.run_dir.mkdir(parents=True, exist_ok=True)
    if s.dist.is_main:
        s.metrics = MetricsLog(s.cfg.run_dir / "metrics.jsonl", resume_iteration=start)
        write_yaml(s.cfg.run_dir / "run.yaml", s.cfg.to_dict())


def _finished(s: _Session, iterations: int) -> TrainResult:
    """A finished run, left as it is: the accuracy its summary recorded."""
    summary = s.cfg.run_dir / SUMMARY
    accuracy_log: dict = {}
    if summary.is_file():
        try:
            accuracy_log = json.loads(summary.read_text()).get("accuracy_on_target_test") or {}
        except (ValueError, AttributeError):
            accuracy_log = {}
    return TrainResult(
        run_dir=s.cfg.run_dir,
        checkpoint=s.ckpt_path,
        iterations=iterations,
        seconds=0.0,
        resumed_from=iterations,
        accuracy=accuracy_log if isinstance(accuracy_log, dict) else {},
        bank=s.bank,
    )


# -- one iteration --------------------------------------------------------------------------------
def _autocast(s: _Session) -> contextlib.AbstractContextManager:
    # bf16 autocast pays on GPUs; on CPUs it is slower than fp32, so it applies to CUDA only.
    if s.cfg.precision == "bf16" and s.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _begin_narrow_training(s: _Session, it: int) -> None:
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


def _train_step(s: _Session, it: int) -> tuple[float, dict[str, torch.Tensor]]:
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
        s.space, m, cfg.seed, it, cfg.sandwich or phase != "adaptation", open_
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


def _average(s: _Session, done: int) -> None:
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


def _log(s: _Session, done: int, loss: float, terms: dict, t0: float, t_log: float) -> float:
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


def _evaluate(s: _Session) -> dict[str, dict[str, float]]:
    """Target-test accuracy of the largest and smallest model, every trained head."""
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
        for name, config in (("largest", s.space.largest()), ("smallest", s.space.smallest()))
    }


def _checkpoint(s: _Session, iteration: int) -> None:
    D.sync_buffers(s.dist, s.model)  # BN statistics: rank 0's, as DDP does at each forward
    # Each rank has its own data streams and RNG: keep all of them, resume each its own.
    local = {
        "rng": capture_rng(),
        "loaders": {
            "source": s.src.state_dict(),
            "target": s.tgt.state_dict() if s.tgt else None,
            **({"views": [v.state_dict() for v in s.views]} if s.views else {}),
        },
    }
    ranks = [local]
    if s.dist.enabled:
        ranks = [None] * s.dist.world_size
        torch.distributed.all_gather_object(ranks, local)
    if s.dist.is_main:
        cfg, space = s.cfg, s.space
        state = TrainState(
            model=s.model.state_dict(),
            optimizer=s.optimizer.state_dict(),
            ranks=ranks,
            iteration=iteration,
            config=cfg.to_dict(),
            config_hash=cfg.training_hash(),
            space_hash=space.hash,
            space_name=space.name,
            space=space.to_dict(),
            backbone=space.backbone,
            classes=list(s.data.classes),
            task=str(s.data.task),
            method=cfg.method,
            deploy_head=s.bank.deploy_head,
            heads=list(HEADS),
            world_size=s.dist.world_size,
            average=(
                s.average.state_dict()
                if s.average.count and iteration < cfg.adaptation_end
                else None
            ),
        )
        save_checkpoint(s.ckpt_path, state)
    D.barrier(s.dist)


def _write_summary(s: _Session, result: TrainResult, start: int) -> None:
    write_json(
        s.cfg.run_dir / SUMMARY,
        {
            "iterations": result.iterations,
            "seconds_this_session": round(result.seconds, 1),
            "resumed_from": start,
            "accuracy_on_target_test": result.accuracy,
            "deploy_head": s.bank.deploy_head,
            "averaged_weights": s.average.count,
            "note": "accuracy after BN re-estimation on target train images; labels used for this log only",
        },
    )


def _acc_text(it: int, acc: dict, head: str) -> str:
    parts = [
        f"{name} {vals.get(head, next(iter(vals.values()))):.1%}" for name, vals in acc.items()
    ]
    return f"iteration {it}: target accuracy ({head}) " + ", ".join(parts)


def _diff(old: dict, new: dict) -> str:
    for key in new:
        if key in NOT_TRAINED:
            continue
        if old.get(key) != new.get(key):
            return f"field {key!r}: {old.get(key)!r} there, {new.get(key)!r} now"
    return "see run.yaml"
