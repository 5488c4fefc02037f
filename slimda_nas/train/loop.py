"""``train_bank``: train one SlimDA model bank from a run config, resumable bit for bit."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from slimda_nas._io import write_json, write_yaml
from slimda_nas.bank import ModelBank
from slimda_nas.errors import CheckpointError, ConfigError, RunError, TrainingDiverged
from slimda_nas.methods import HEADS, build_method
from slimda_nas.space import load_space
from slimda_nas.train import distributed as D
from slimda_nas.train.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from slimda_nas.train.config import RunConfig
from slimda_nas.train.metrics import MetricsLog
from slimda_nas.train.progress import TrainProgress
from slimda_nas.train.sandwich import sample_model_batch
from slimda_nas.train.schedule import lr_factor
from slimda_nas.train.step import BankStep

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    iterations: int
    seconds: float
    resumed_from: int = 0
    # "largest"/"smallest" -> head -> accuracy
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    bank: ModelBank | None = None


def build_optimizer(model: nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """SGD with two groups: the backbone (lr x backbone_lr_mult) and the heads (lr)."""
    heads = set(HEADS)
    backbone = [
        p
        for n, p in model.named_parameters()
        if n.split(".", 1)[0] not in heads and p.requires_grad
    ]
    head_params = [
        p for n, p in model.named_parameters() if n.split(".", 1)[0] in heads and p.requires_grad
    ]
    o = cfg.optimizer
    groups = [
        {
            "params": backbone,
            "lr": o.lr * o.backbone_lr_mult,
            "base_lr": o.lr * o.backbone_lr_mult,
        },
        {"params": head_params, "lr": o.lr, "base_lr": o.lr},
    ]
    return torch.optim.SGD(
        groups,
        lr=o.lr,
        momentum=o.momentum,
        nesterov=o.nesterov and o.momentum > 0,
        weight_decay=o.weight_decay,
    )


def train_bank(
    cfg: RunConfig,
    *,
    resume: bool | None = None,
    show_progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train the bank ``cfg`` describes into ``cfg.run_dir``.

    A run folder that already holds a checkpoint of the same config is resumed (``resume=None``
    or ``True``); ``resume=True`` requires one, ``resume=False`` refuses to touch it.
    ``stop_after`` ends the call after that many iterations (tests use it to simulate a kill).
    """
    from slimda_nas.data import (
        InfiniteLoader,
        eval_batches,
        fixed_subset,
        load_task,
        resolve_data_root,
    )
    from slimda_nas.evaluate.accuracy import accuracy

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
    deploy_head = cfg.deploy_head or method.default_deploy_head

    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    bank = ModelBank.build(
        space,
        len(data.classes),
        heads=HEADS,
        weights=cfg.weights,
        classes=data.classes,
        deploy_head=deploy_head,
    )
    model = bank.model.to(device)
    for h in HEADS:
        if h not in method.trained_heads:
            getattr(model, h).requires_grad_(False)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)

    src = InfiniteLoader(data.source_train, cfg.batch_size, seed=cfg.seed * 1000 + 2 * dist.rank)
    tgt = (
        InfiniteLoader(
            data.target_train,
            cfg.batch_size,
            seed=cfg.seed * 1000 + 2 * dist.rank + 1,
            with_labels=False,
        )
        if method.uses_target
        else None
    )

    run_dir = cfg.run_dir
    ckpt_path = run_dir / CHECKPOINT
    start = 0
    if ckpt_path.exists():
        if resume is False:
            raise CheckpointError(
                f"{run_dir}: already holds a trained run; choose another name or resume it"
            )
        state = load_checkpoint(ckpt_path, space_hash=space.hash, backbone=space.backbone)
        missing = [k for k in ("config_hash", "optimizer", "ranks") if k not in state]
        if missing:
            raise CheckpointError(
                f"{ckpt_path}: holds no training state to resume ({', '.join(missing)} missing; "
                "an older or exported checkpoint); use another run name to train afresh"
            )
        if state["config_hash"] != cfg.training_hash():
            raise CheckpointError(
                f"{ckpt_path}: was trained with a different config ({_diff(state['config'], cfg.to_dict())}); "
                "use another run name or delete the folder"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if len(state["ranks"]) != dist.world_size:
            raise CheckpointError(
                f"{ckpt_path}: written by {len(state['ranks'])} process(es); resume with the same number "
                f"(now {dist.world_size}) so every data stream continues where it stopped"
            )
        mine = state["ranks"][dist.rank]
        src.load_state_dict(mine["loaders"]["source"])
        if tgt is not None:
            tgt.load_state_dict(mine["loaders"]["target"])
        restore_rng(mine["rng"])
        start = int(state["iteration"])
    elif resume:
        raise CheckpointError(f"{ckpt_path}: no checkpoint to resume from")

    step = BankStep(model, method, cfg.channels_last)
    if dist.enabled:
        ddp_kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
        step = nn.parallel.DistributedDataParallel(step, **ddp_kwargs)
    if cfg.compile:
        step = torch.compile(step)
    # bf16 autocast pays on GPUs; on CPUs it is slower than fp32, so it applies to CUDA only.
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if cfg.precision == "bf16" and device.type == "cuda"
        else contextlib.nullcontext()
    )

    calib_idx = fixed_subset(data.target_train, cfg.calibration_images, seed=cfg.seed)
    test_idx = fixed_subset(data.target_test, cfg.eval_images, seed=cfg.seed + 1)

    def evaluate() -> dict[str, dict[str, float]]:
        calib = [x.to(device) for x in eval_batches(data.target_train, 256, calib_idx)]
        heads = [h for h in HEADS if h in method.trained_heads]
        return {
            name: accuracy(
                bank,
                config,
                calib,
                eval_batches(data.target_test, 256, test_idx, with_labels=True),
                heads,
            )
            for name, config in (("largest", space.largest()), ("smallest", space.smallest()))
        }

    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = (
        MetricsLog(run_dir / "metrics.jsonl", resume_iteration=start) if dist.is_main else None
    )
    if dist.is_main:
        write_yaml(run_dir / "run.yaml", cfg.to_dict())

    def checkpoint(iteration: int) -> None:
        D.sync_buffers(dist, model)  # BN statistics: rank 0's, as DDP does at each forward
        # Each rank has its own data streams and RNG: keep all of them, resume each its own.
        local = {
            "rng": capture_rng(),
            "loaders": {"source": src.state_dict(), "target": tgt.state_dict() if tgt else None},
        }
        ranks = [local]
        if dist.enabled:
            ranks = [None] * dist.world_size
            torch.distributed.all_gather_object(ranks, local)
        if dist.is_main:
            save_checkpoint(
                ckpt_path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "ranks": ranks,
                    "iteration": iteration,
                    "config": cfg.to_dict(),
                    "config_hash": cfg.training_hash(),
                    "space_hash": space.hash,
                    "space_name": space.name,
                    "space": space.to_dict(),
                    "backbone": space.backbone,
                    "classes": list(data.classes),
                    "task": str(data.task),
                    "method": cfg.method,
                    "deploy_head": deploy_head,
                    "heads": list(HEADS),
                    "world_size": dist.world_size,
                },
            )
        D.barrier(dist)

    end = cfg.iterations if stop_after is None else min(cfg.iterations, start + stop_after)
    images_per_step = cfg.batch_size * (2 if tgt else 1) * dist.world_size
    progress = TrainProgress(
        start,
        cfg.iterations,
        enabled=show_progress and dist.is_main,
        title=f"training {cfg.name} ({cfg.method}, {cfg.task})",
    )
    t0, t_log = time.time(), time.time()
    result = TrainResult(run_dir, ckpt_path, start, 0.0, resumed_from=start, bank=bank)
    model.train()
    try:
        with progress:
            for it in range(start, end):
                p = it / cfg.iterations
                for g in optimizer.param_groups:
                    g["lr"] = g["base_lr"] * lr_factor(cfg.optimizer, p)
                widths = [
                    space.layer_widths(c)
                    for c in sample_model_batch(
                        space, cfg.models_per_step, cfg.seed, it, cfg.sandwich
                    )
                ]
                x_src, y_src = next(src)
                x_tgt = next(tgt).to(device, non_blocking=True) if tgt else None
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    total, terms = step(
                        x_src.to(device, non_blocking=True), y_src.to(device), x_tgt, widths, p
                    )
                loss_value = float(total.detach())
                if not D.all_ok(dist, math.isfinite(loss_value), device):
                    bad = next(
                        (k for k, v in terms.items() if not math.isfinite(float(v))), "total"
                    )
                    raise TrainingDiverged(
                        f"iteration {it + 1}: loss term {bad!r} is {float(terms.get(bad, total))}; stopped, "
                        f"the last good checkpoint is {ckpt_path} (try a lower optimizer.lr)"
                    )
                total.backward()
                optimizer.step()
                done = it + 1
                progress.update(done, loss_value)
                if metrics and (done % cfg.log_every == 0 or done == cfg.iterations):
                    now = time.time()
                    steps = cfg.log_every if done % cfg.log_every == 0 else done % cfg.log_every
                    metrics.write(
                        {
                            "iteration": done,
                            "loss": loss_value,
                            **{k: float(v) for k, v in terms.items()},
                            "lambda": _lambda(p),
                            "lr": optimizer.param_groups[1]["lr"],
                            "images_per_s": images_per_step * steps / max(now - t_log, 1e-9),
                            "time": now - t0,
                        }
                    )
                    t_log = now
                if cfg.eval_every and (done % cfg.eval_every == 0 or done == cfg.iterations):
                    if dist.is_main:
                        result.accuracy = evaluate()
                        metrics.write({"iteration": done, "eval": result.accuracy})
                        progress.note(_acc_text(done, result.accuracy, deploy_head))
                        model.train()
                    D.barrier(dist)
                if done % cfg.checkpoint_every == 0 or done == cfg.iterations:
                    checkpoint(done)
                result.iterations = done
    except RuntimeError as e:
        if not dist.enabled:
            raise
        # A peer died (killed, out of memory...): stop this rank with a clear line, not a hang.
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise RunError(
            f"rank {dist.rank}: lost another training process ({reason}); the last checkpoint is "
            f"{ckpt_path}: run the same command again to resume"
        ) from None

    result.seconds = time.time() - t0
    if dist.is_main and result.iterations == cfg.iterations:
        write_json(
            run_dir / "train_summary.json",
            {
                "iterations": result.iterations,
                "seconds_this_session": round(result.seconds, 1),
                "resumed_from": start,
                "accuracy_on_target_test": result.accuracy,
                "deploy_head": deploy_head,
                "note": "accuracy after BN re-estimation on target train images; labels used for this log only",
            },
        )
    return result


def _lambda(p: float) -> float:
    from slimda_nas.methods.losses import confusion_lambda

    return confusion_lambda(p)


def _acc_text(it: int, acc: dict, head: str) -> str:
    parts = [
        f"{name} {vals.get(head, next(iter(vals.values()))):.1%}" for name, vals in acc.items()
    ]
    return f"iteration {it}: target accuracy ({head}) " + ", ".join(parts)


def _diff(old: dict, new: dict) -> str:
    for key in new:
        if key in ("out", "data_root", "device", "checkpoint_every", "log_every", "eval_every"):
            continue
        if old.get(key) != new.get(key):
            return f"field {key!r}: {old.get(key)!r} there, {new.get(key)!r} now"
    return "see run.yaml"
