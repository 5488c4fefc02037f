"""The MACs range of a search space, and how much of it fits a budget."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from slimda_nas.bank import ModelBank
from slimda_nas.errors import BudgetError
from slimda_nas.evaluate.budget import Budget, format_fraction
from slimda_nas.evaluate.macs import CostModel
from slimda_nas.space import SearchSpace


@dataclass(kw_only=True)
class SpaceSummary:
    space: SearchSpace
    num_classes: int
    largest_macs: int
    smallest_macs: int
    largest_params: int
    uniform: list[tuple[float, int]] = field(default_factory=list)  # (ratio, MACs)
    budget: Budget | None = None
    budget_macs: int | None = None
    feasible_fraction: float | None = None
    samples: int = 0

    @property
    def smallest_fraction(self) -> float:
        return self.smallest_macs / self.largest_macs

    @property
    def reachable(self) -> bool | None:
        return None if self.budget_macs is None else self.smallest_macs <= self.budget_macs


def summarize_space(
    space: SearchSpace,
    num_classes: int = 10,
    budget: Budget | None = None,
    samples: int = 2000,
    seed: int = 0,
) -> SpaceSummary:
    """MACs (thop-exact) of the smallest, largest and uniform-width configurations, and with a
    budget, the fraction of uniformly drawn configurations that fit it."""
    bank = ModelBank.build(space, num_classes)
    cost = CostModel(bank)
    largest = cost.macs(space.largest())
    summary = SpaceSummary(
        space=space,
        num_classes=num_classes,
        largest_macs=largest,
        smallest_macs=cost.macs(space.smallest()),
        largest_params=cost.params(space.largest()),
        uniform=[(r, cost.macs(space.uniform(r))) for r in _uniform_ratios(space)],
    )
    if budget is not None:
        limit = budget.macs(largest)
        rng = random.Random(seed)
        hits = sum(cost.macs(space.sample(rng)) <= limit for _ in range(samples))
        summary.budget, summary.budget_macs = budget, limit
        summary.feasible_fraction, summary.samples = hits / samples, samples
    return summary


def unreachable_message(budget: Budget, smallest_macs: int, anchor_macs: int) -> str:
    """``budget``, a fraction of the anchor's MACs, is below the smallest model."""
    return (
        f"budget {budget.text} ({budget.macs(anchor_macs):,} MACs) is below the smallest "
        f"model's {format_fraction(smallest_macs / anchor_macs)} ({smallest_macs:,} MACs)"
    )


def check_reachable(budget: Budget, smallest_macs: int, anchor_macs: int) -> None:
    """Refuse a budget no configuration fits (fractions are of the anchor's MACs: the largest
    model's unless the scoring settings name another anchor)."""
    if budget.macs(anchor_macs) < smallest_macs:
        raise BudgetError(unreachable_message(budget, smallest_macs, anchor_macs))


def _uniform_ratios(space: SearchSpace) -> list[float]:
    """Ratios every unit offers (the common uniform widths), else a coarse ladder."""
    common = None
    for u in space.units:
        ratios = {round(c / u.full, 4) for c in u.channel_choices}
        common = ratios if common is None else common & ratios
    return sorted(common) if common else [0.25, 0.5, 0.75, 1.0]
