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
