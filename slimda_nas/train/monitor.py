"""What the training log prints: target accuracy of chosen sub-networks, for the user's eyes only
(training never reads it back)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from slimda_nas.bank import ModelBank
from slimda_nas.slim.bn_recal import preserved_bn_stats, recalibrate_bn


@torch.no_grad()
def accuracy(
    bank: ModelBank,
    config: Mapping,
    calibration: Iterable[torch.Tensor],
    labelled_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    heads: Sequence[str] | None = None,
) -> dict[str, float]:
    """Top-1 accuracy of each head (default: the deployed one) after BN re-estimation on
    ``calibration``; the bank's widths, statistics and mode are restored afterwards."""
    heads = list(heads or [bank.deploy_head])
    correct = dict.fromkeys(heads, 0)
    total = 0
    model = bank.model
    was_training = model.training
    with bank.use(config), preserved_bn_stats(model):
        recalibrate_bn(model, calibration, forward=model.forward_features)
        model.eval()
        device = next(model.parameters()).device
        for x, y in labelled_batches:
            out = model(x.to(device), heads=heads)
            y = y.to(device)
            for h in heads:
                correct[h] += int((out[h].argmax(1) == y).sum())
            total += len(y)
    model.train(was_training)
    return {h: correct[h] / max(total, 1) for h in heads}
