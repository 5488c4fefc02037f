"""UPEM: a candidate's output discrepancy against the anchor on unlabelled target images.

Smaller is better. The default is KL(anchor || candidate) on the deployed head's softmax; the
alternatives are Jensen-Shannon, total variation and 1 - top-1 agreement (SPEC 2.5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

METRICS = ("kl", "js", "tv", "disagreement")


def discrepancy(anchor_log_p: Tensor, log_q: Tensor, metric: str = "kl") -> Tensor:
    """Per-image discrepancy between two log-probability tensors of shape (N, K)."""
    if metric == "kl":
        return (anchor_log_p.exp() * (anchor_log_p - log_q)).sum(dim=1)
    if metric == "js":
        p, q = anchor_log_p.exp(), log_q.exp()
        log_m = torch.log((0.5 * (p + q)).clamp_min(1e-30))
        return 0.5 * (p * (anchor_log_p - log_m)).sum(dim=1) + 0.5 * (q * (log_q - log_m)).sum(
            dim=1
        )
    if metric == "tv":
        return 0.5 * (anchor_log_p.exp() - log_q.exp()).abs().sum(dim=1)
    if metric == "disagreement":
        return (anchor_log_p.argmax(dim=1) != log_q.argmax(dim=1)).to(anchor_log_p.dtype)
    raise ValueError(f"unknown UPEM metric {metric!r}: expected one of {', '.join(METRICS)}")


def upem_scores(anchor_log_p: Tensor, logits: Tensor, metrics=METRICS) -> dict[str, float]:
    """Mean discrepancy per metric of candidate ``logits`` against the anchor's log-probabilities."""
    log_q = F.log_softmax(logits.double(), dim=1)
    anchor = anchor_log_p.double()
    return {m: float(discrepancy(anchor, log_q, m).mean()) for m in metrics}
