"""The optimizer of a bank (SGD, two parameter groups) and its learning-rate schedule as a
function of training progress p in [0, 1]."""

from __future__ import annotations

import math

import torch
from torch import nn

from slimda_nas.methods import HEADS
from slimda_nas.train.config import OptimizerConfig, RunConfig


def lr_factor(opt: OptimizerConfig, progress: float) -> float:
    """Multiplier of the base learning rate at ``progress``."""
    if opt.schedule == "inv":  # SymNet / DANN: lr0 / (1 + 10 p)^0.75
        return (1.0 + opt.gamma * progress) ** (-opt.power)
    if opt.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def phase_at(cfg: RunConfig, it: int) -> tuple[str, float]:
    """(phase, progress in [0, 1] of the phase) at iteration ``it`` (0-based); the phases are
    ``warmup``, ``adaptation`` and ``teacher``, in that order."""
    w, end = cfg.warmup.iterations, cfg.adaptation_end
    if it < w:
        return "warmup", it / w
    if it < end:
        return "adaptation", (it - w) / cfg.iterations
    return "teacher", (it - end) / cfg.teacher.iterations


def set_learning_rates(
    optimizer: torch.optim.Optimizer, cfg: RunConfig, phase: str, progress: float
) -> None:
    """The warm-up keeps its learning rate constant; adaptation and the teacher stage follow
    the schedule (the stage with its own lr0 and backbone multiplier where it sets them)."""
    o, t = cfg.optimizer, cfg.teacher
    groups = optimizer.param_groups  # backbone, heads (build_optimizer)
    if phase == "warmup":
        rates = [g["base_lr"] * (cfg.warmup.lr or o.lr) / o.lr for g in groups]
    elif phase == "teacher":
        lr0 = t.lr or o.lr
        mult = o.backbone_lr_mult if t.backbone_lr_mult is None else t.backbone_lr_mult
        rates = [lr0 * mult * lr_factor(o, progress), lr0 * lr_factor(o, progress)]
    else:
        rates = [g["base_lr"] * lr_factor(o, progress) for g in groups]
    for g, lr in zip(groups, rates, strict=True):
        g["lr"] = lr


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
