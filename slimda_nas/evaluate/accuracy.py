"""Ground-truth accuracy on the labelled target test split: for reports only, never for search."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager

import torch

from slimda_nas.bank import ModelBank
from slimda_nas.evaluate.bn_recal import preserved_bn_stats, recalibrate_bn


@contextmanager
def calibrated(bank: ModelBank, config: Mapping, calibration: Iterable[torch.Tensor]):
    """Run the bank at ``config`` with BN statistics re-estimated on ``calibration`` batches;
    the bank's widths and statistics are restored on exit."""
    with bank.use(config), preserved_bn_stats(bank.model):
        recalibrate_bn(bank.model, calibration, forward=bank.model.forward_features)
        bank.model.eval()
        yield bank.model


@torch.no_grad()
def accuracy(
    bank: ModelBank,
    config: Mapping,
    calibration: Iterable[torch.Tensor],
    labelled_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    heads: Sequence[str] | None = None,
) -> dict[str, float]:
    """Top-1 accuracy of each head (default: the deployed one) after BN re-estimation."""
    heads = list(heads or [bank.deploy_head])
    correct = dict.fromkeys(heads, 0)
    total = 0
    was_training = bank.model.training
    with calibrated(bank, config, calibration) as model:
        device = next(model.parameters()).device
        for x, y in labelled_batches:
            out = model(x.to(device), heads=heads)
            y = y.to(device)
            for h in heads:
                correct[h] += int((out[h].argmax(1) == y).sum())
            total += len(y)
    bank.model.train(was_training)
    return {h: correct[h] / max(total, 1) for h in heads}
