"""Re-estimate BatchNorm statistics of a sub-network on target images (docs/method.md, "Scoring a candidate").

A sub-network's running statistics from training are meaningless (every width updated the
same shared slices), so before it is scored or exported they are reset and re-estimated as a
cumulative average over a fixed set of unlabelled target images. The bank's own statistics are
saved first and restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


def _bns(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor], forward=None) -> None:
    """Reset every BN layer and average its statistics over ``batches`` (momentum None).

    ``forward`` runs one batch (default ``model(x)``); the model's train/eval mode is restored.
    """
    bns = _bns(model)
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    was_training = model.training
    model.train()
    # Dropout must not perturb the statistics: keep non-BN modules in eval mode.
    for m in model.modules():
        if not isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.training = False
    try:
        for x in batches:
            (forward or model)(x)
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        model.train(was_training)


@contextmanager
def preserved_bn_stats(model: nn.Module) -> Iterator[None]:
    """Restore every BN layer's running statistics and counters on exit."""
    saved = [
        (bn, bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
        for bn in _bns(model)
        if bn.track_running_stats
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for bn, mean, var, count in saved:
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
                bn.num_batches_tracked.copy_(count)
