"""Learning-rate schedules as functions of training progress p in [0, 1]."""

from __future__ import annotations

import math

from slimda_nas.train.config import OptimizerConfig


def lr_factor(opt: OptimizerConfig, progress: float) -> float:
    """Multiplier of the base learning rate at ``progress``."""
    if opt.schedule == "inv":  # SymNet / DANN: lr0 / (1 + 10 p)^0.75
        return (1.0 + opt.gamma * progress) ** (-opt.power)
    if opt.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0
