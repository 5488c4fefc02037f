"""What a search returns: per budget, the chosen configuration; per study, its statistics."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState


@dataclass
class Choice:
    """The configuration a study picks for one budget."""

    budget: str
    budget_macs: int
    config: dict
    macs: int
    fraction: float  # of the anchor's MACs
    params: int
    upem: dict[str, float]
    trial: int
    study: str
    sampler: str
    accuracy: float | None = None  # ground truth: measured after the search, never seen by it

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StudySummary:
    name: str
    sampler: str
    seed: int
    budget: str | None
    budget_macs: int | None
    trials: int
    evaluations: int
    duplicates: int
    feasible_fraction: float | None
    seconds: float
    requested: int | None = None  # evaluations asked of an Optuna sampler (baselines: None)
    choices: list[Choice] = field(default_factory=list)

    @property
    def short(self) -> bool:
        """Fewer evaluations than requested: the sampler ran out of new feasible proposals."""
        return self.requested is not None and self.evaluations < self.requested

    def to_dict(self) -> dict:
        d = asdict(self)
        d["choices"] = [c.to_dict() for c in self.choices]
        return d


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]


def upem_of(t: FrozenTrial) -> float:
    """A trial's UPEM objective (the second value in multi-objective studies)."""
    if isinstance(t.values, list) and len(t.values) == 2:
        return t.values[1]
    return t.value if t.value is not None else math.inf


def best_within(trials: list[FrozenTrial], budget_macs: int) -> FrozenTrial | None:
    """The trial of least UPEM whose MACs fit ``budget_macs`` (ties: fewer MACs, earlier)."""
    ok = [
        t
        for t in trials
        if t.user_attrs.get("macs", math.inf) <= budget_macs and math.isfinite(upem_of(t))
    ]
    return min(ok, key=lambda t: (upem_of(t), t.user_attrs["macs"], t.number), default=None)


def pareto_front(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Trials no other trial beats on both MACs and UPEM, sorted by MACs."""
    pts = sorted(
        (t for t in trials if math.isfinite(upem_of(t))),
        key=lambda t: (t.user_attrs["macs"], upem_of(t)),
    )
    front, best = [], math.inf
    seen = set()
    for t in pts:
        key = t.user_attrs.get("key") or tuple(sorted(t.params.items()))
        if upem_of(t) < best and key not in seen:
            front.append(t)
            best = upem_of(t)
            seen.add(key)
    return front


def feasible_fraction(study: optuna.Study) -> float | None:
    """Fraction of proposals within the budget (random search: of its raw uniform draws)."""
    trials = complete_trials(study)
    own = [
        t
        for t in trials
        if t.user_attrs.get("proposer", t.user_attrs.get("sampler")) == t.user_attrs.get("sampler")
    ]
    if not own:
        return None
    draws = [t.system_attrs.get("draws") for t in own]
    if all(d is not None for d in draws):
        return len(draws) / sum(draws)
    feasible = sum(all(v <= 0 for v in t.constraints.values()) for t in own)
    return feasible / len(own)
