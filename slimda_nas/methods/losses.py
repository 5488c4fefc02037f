"""The loss terms of SymNet domain confusion and Stochastic Ensemble Distillation (docs/method.md, "Training one model bank").

Pure functions of logits, so each term can be checked against a hand computation. Gradient
routing is the caller's business (see :mod:`slimda_nas.methods.slimda`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def confusion_lambda(progress: float) -> float:
    """SymNet's trade-off weight: 2 / (1 + exp(-10 p)) - 1, from 0 to ~1 over training."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


def _halves(v: Tensor) -> tuple[Tensor, Tensor]:
    """log of the probability mass on the Cs half and on the Ct half of softmax over 2K."""
    k = v.shape[1] // 2
    log_p = F.log_softmax(v, dim=1)
    return torch.logsumexp(log_p[:, :k], dim=1), torch.logsumexp(log_p[:, k:], dim=1)


def symnet_classifier_loss(
    s_src: Tensor, t_src: Tensor, s_tgt: Tensor, t_tgt: Tensor, y: Tensor
) -> dict[str, Tensor]:
    """L_C, the classifier side (updates Cs and Ct only).

    Cs and Ct are both trained on source labels; the 2K-way softmax learns to put source images
    on the Cs half and target images on the Ct half (domain discrimination).
    """
    ce = F.cross_entropy(s_src, y) + F.cross_entropy(t_src, y)
    src_on_s, _ = _halves(torch.cat([s_src, t_src], dim=1))
    _, tgt_on_t = _halves(torch.cat([s_tgt, t_tgt], dim=1))
    return {"cls_ce": ce, "cls_domain": -src_on_s.mean() - tgt_on_t.mean()}


def symnet_feature_loss(
    s_src: Tensor, t_src: Tensor, s_tgt: Tensor, t_tgt: Tensor, y: Tensor, lam: float
) -> dict[str, Tensor]:
    """L_G, the feature side (updates the backbone only).

    Category-level confusion on source (the true class on both halves), domain-level confusion
    on target (equal mass on both halves) and the entropy of the folded prediction on target.
    """
    k = s_src.shape[1]
    v_src = torch.cat([s_src, t_src], dim=1)
    category = 0.5 * F.cross_entropy(v_src, y) + 0.5 * F.cross_entropy(v_src, y + k)
    on_s, on_t = _halves(torch.cat([s_tgt, t_tgt], dim=1))
    domain = -0.5 * (on_s + on_t).mean()
    q = folded_probabilities(s_tgt, t_tgt)
    entropy = -(q * torch.log(q.clamp_min(1e-12))).sum(dim=1).mean()
    return {"feat_category": category, "feat_domain": lam * domain, "feat_entropy": lam * entropy}


def folded_probabilities(s_logits: Tensor, t_logits: Tensor) -> Tensor:
    """q_k = p^st_k + p^st_{k+K}: SymNet's category probability from the 2K-way softmax."""
    k = s_logits.shape[1]
    p = F.softmax(torch.cat([s_logits, t_logits], dim=1), dim=1)
    return p[:, :k] + p[:, k:]


def seed_target(
    probs: Sequence[Tensor], temperature: float = 0.5, confidence: str = "max"
) -> Tensor:
    """The distillation target of Stochastic Ensemble Distillation (detached).

    Each sampled model's prediction is weighted per image by its confidence (top probability,
    or ``entropy``: 1 - H/log K), averaged, then sharpened with ``temperature``.
    """
    stacked = torch.stack([p.detach() for p in probs])  # (m, N, K)
    if confidence == "max":
        conf = stacked.max(dim=2).values
    elif confidence == "entropy":
        k = stacked.shape[2]
        h = -(stacked * torch.log(stacked.clamp_min(1e-12))).sum(dim=2)
        conf = 1.0 - h / math.log(k)
    else:
        raise ValueError(f"confidence must be 'max' or 'entropy', got {confidence!r}")
    weights = conf / conf.sum(dim=0, keepdim=True).clamp_min(1e-12)
    p_bar = (weights.unsqueeze(2) * stacked).sum(dim=0)
    sharp = p_bar.clamp_min(1e-12) ** (1.0 / temperature)
    return sharp / sharp.sum(dim=1, keepdim=True)


def soft_cross_entropy(target: Tensor, logits: Tensor) -> Tensor:
    """CE(target, softmax(logits)), averaged over the batch."""
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
