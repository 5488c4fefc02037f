"""Label-free scores of a candidate sub-network, behind one registry: a name maps to a function
of the candidate's outputs on unlabelled target images and of what it is compared with (the
anchor, an ensemble of wide configurations, or nothing). Every score is computed from the same
forward passes; smaller is better for all of them (scores where larger is better are negated).

UPEM, the method's family, is a discrepancy against the bank's best models (docs/method.md, "Scoring a candidate"): against
the anchor (the largest configuration) or against an ensemble of wide configurations, the mean
prediction of models the bank knows to be good, as SEED's teacher is during training.
Anchor-free validators from the domain-adaptation literature are here for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

Fn = Callable[[Tensor, Tensor | None], Tensor]


@dataclass(frozen=True, kw_only=True)
class Score:
    """One label-free score. ``fn(log_q, log_p)`` gives the per-image or batch value from the
    candidate's log-probabilities ``log_q`` (N, K) and the reference's ``log_p`` (None for an
    anchor-free score); the score is its mean over images."""

    name: str
    fn: Fn
    reference: str | None  # "anchor" | "ensemble" | None
    head: str | None = None  # None: the deployed head
    tiebreak: str | None = None  # a continuous score that orders ties of a discrete one
    doc: str = ""


SCORES: dict[str, Score] = {}

# The search's default, chosen by the within-budget ranking check over tasks, banks and sampling
# seeds (BENCHMARKS.md, "Ranking within a budget"): KL(anchor || candidate) on the Ct head ranks
# same-budget configurations better than on the deployed Ca head, which SEED distils towards one
# shared target at every width.
DEFAULT_METRIC = "kl@ct"
# What records written before the metric was stored (or chosen) held.
LEGACY_METRIC = "kl"


def register(score: Score) -> Score:
    if score.name in SCORES:
        raise ValueError(f"score {score.name!r} is registered twice")
    SCORES[score.name] = score
    return score


# -- discrepancies against a reference ---------------------------------------------------------------
def kl(log_q: Tensor, log_p: Tensor) -> Tensor:
    """KL(reference || candidate) per image."""
    return (log_p.exp() * (log_p - log_q)).sum(1)


def reverse_kl(log_q: Tensor, log_p: Tensor) -> Tensor:
    """KL(candidate || reference) per image: mode-seeking, punishes confident mistakes."""
    return (log_q.exp() * (log_q - log_p)).sum(1)


def js(log_q: Tensor, log_p: Tensor) -> Tensor:
    """Jensen-Shannon divergence per image."""
    p, q = log_p.exp(), log_q.exp()
    log_m = torch.log((0.5 * (p + q)).clamp_min(1e-30))
    return 0.5 * (p * (log_p - log_m)).sum(1) + 0.5 * (q * (log_q - log_m)).sum(1)


def tv(log_q: Tensor, log_p: Tensor) -> Tensor:
    """Total variation distance per image."""
    return 0.5 * (log_p.exp() - log_q.exp()).abs().sum(1)


def disagreement(log_q: Tensor, log_p: Tensor) -> Tensor:
    """1 - top-1 agreement per image (steps of 1/N: ties are ordered by ``tiebreak``)."""
    return (log_p.argmax(1) != log_q.argmax(1)).to(log_q.dtype)


def hard_nll(log_q: Tensor, log_p: Tensor) -> Tensor:
    """Cross-entropy of the candidate against the reference's top-1 labels (pseudo-labels)."""
    return -log_q.gather(1, log_p.argmax(1, keepdim=True)).squeeze(1)


# -- anchor-free validators -------------------------------------------------------------------------
def entropy(log_q: Tensor, _: Tensor | None = None) -> Tensor:
    """Prediction entropy per image (Morerio et al., ICLR 2018: minimal-entropy validation)."""
    return -(log_q.exp() * log_q).sum(1)


def neg_bnm(log_q: Tensor, _: Tensor | None = None) -> Tensor:
    """Minus the batch nuclear norm of the prediction matrix over the images, ||P||_* / N (Cui
    et al., CVPR 2020, "Towards discriminability and diversity: batch nuclear-norm
    maximization"): large when predictions are confident AND spread over the classes."""
    p = log_q.exp()
    return -torch.linalg.svdvals(p).sum() / p.shape[0]


def neg_im(log_q: Tensor, _: Tensor | None = None) -> Tensor:
    """Minus the mutual information between images and predicted classes, H(mean p) - mean H(p)
    (the information-maximisation criterion of Shi & Sha, ICML 2012, and Gomes et al., NIPS
    2010; pytorch-adapt's IMValidator): confident per image, diverse over the batch."""
    p = log_q.exp()
    mean = p.mean(0)
    return -(-(mean * torch.log(mean.clamp_min(1e-30))).sum() - entropy(log_q).mean())


_DISCREPANCIES: dict[str, tuple[Fn, str | None]] = {
    "kl": (kl, None),
    "rkl": (reverse_kl, None),
    "js": (js, None),
    "tv": (tv, None),
    "disagreement": (disagreement, "kl"),
    "nll": (hard_nll, None),
}
for _name, (_fn, _tie) in _DISCREPANCIES.items():
    register(
        Score(
            name=_name,
            fn=_fn,
            reference="anchor",
            tiebreak=_tie,
            doc=f"UPEM {_name} against the anchor (the largest model)",
        )
    )
    register(
        Score(
            name=f"ens_{_name}",
            fn=_fn,
            reference="ensemble",
            tiebreak=_tie and f"ens_{_tie}",
            doc=f"UPEM {_name} against the ensemble of wide configurations",
        )
    )
for _head in ("ct", "cs"):
    for _name in ("kl", "js", "disagreement"):
        fn, tie = _DISCREPANCIES[_name]
        register(
            Score(
                name=f"{_name}@{_head}",
                fn=fn,
                reference="anchor",
                head=_head,
                tiebreak=tie and f"{tie}@{_head}",
                doc=f"UPEM {_name} against the anchor, on the {_head} head",
            )
        )
register(Score(name="entropy", fn=entropy, reference=None, doc=entropy.__doc__))
register(Score(name="neg_bnm", fn=neg_bnm, reference=None, doc=neg_bnm.__doc__))
register(Score(name="neg_im", fn=neg_im, reference=None, doc=neg_im.__doc__))


def score_names() -> tuple[str, ...]:
    return tuple(SCORES)


def compute_scores(
    log_q: Mapping[str, Tensor],
    references: Mapping[str, Mapping[str, Tensor]],
    deploy_head: str,
    names: Iterable[str] | None = None,
    images: int | None = None,
) -> dict[str, float]:
    """Every score (or ``names``) of a candidate whose log-probabilities per head are
    ``log_q``; ``references`` maps "anchor" / "ensemble" to log-probabilities per head.
    ``images`` limits both to the first that many images (a smaller scoring subset). Scores of
    a head the candidate has no outputs for are left out."""
    out = {}
    for name in names if names is not None else SCORES:
        s = SCORES[name]
        head = s.head or deploy_head
        if head not in log_q:
            continue
        q = log_q[head][:images].double()
        p = None if s.reference is None else references[s.reference][head][:images].double()
        value = float(s.fn(q, p).mean())
        out[name] = value if math.isfinite(value) else math.inf
    return out


def tiebreak_key(upem: Mapping[str, float], metric: str) -> float:
    """The secondary value that orders candidates tied on ``metric`` (0 when it has none)."""
    tie = SCORES[metric].tiebreak if metric in SCORES else None
    return upem.get(tie, 0.0) if tie else 0.0
