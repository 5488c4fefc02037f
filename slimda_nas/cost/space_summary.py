"""The MACs range of a search space, and how much of it fits a budget."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from slimda_nas._shipped import elastic_sibling
from slimda_nas.bank import ModelBank
from slimda_nas.cost.budget import Budget, format_fraction
from slimda_nas.cost.feasible import BandSampler
from slimda_nas.cost.macs import CostModel
from slimda_nas.errors import BudgetError
from slimda_nas.space import SearchSpace

_BAND_DRAWS = 20


@dataclass(frozen=True, kw_only=True)
class BudgetFit:
    """How much of a space fits one budget."""

    budget: Budget
    macs: int
    fraction: float  # of uniformly drawn configurations
    samples: int
    reachable: bool
    band_found: int | None = None  # distinct fitting configurations of 20 band-sampler draws
    band_seconds: float | None = None


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
    fits: list[BudgetFit] = field(default_factory=list)  # one per budget asked

    @property
    def smallest_fraction(self) -> float:
        return self.smallest_macs / self.largest_macs

    @property
    def reachable(self) -> bool | None:
        return None if self.budget_macs is None else self.smallest_macs <= self.budget_macs


def summarize_space(
    space: SearchSpace,
    num_classes: int = 10,
    budget: Budget | Sequence[Budget] | None = None,
    samples: int = 2000,
    seed: int = 0,
) -> SpaceSummary:
    """MACs (thop-exact) of the smallest, largest and uniform-width configurations, and per
    budget, the fraction of uniformly drawn configurations that fit it. Where none of the draws
    fits a reachable budget (elastic spaces at 1/64: the band is a sliver of the space), the
    band sampler shows the feasible set is not empty by finding configurations in it."""
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
    budgets = [] if budget is None else [budget] if isinstance(budget, Budget) else budget
    for b in budgets:
        summary.fits.append(_fit(space, cost, b, largest, samples, seed))
    if summary.fits:
        first = summary.fits[0]
        summary.budget, summary.budget_macs = first.budget, first.macs
        summary.feasible_fraction, summary.samples = first.fraction, samples
    return summary


def _fit(
    space: SearchSpace, cost: CostModel, budget: Budget, largest: int, samples: int, seed: int
) -> BudgetFit:
    limit = budget.macs(largest)
    rng = random.Random(seed)
    hits = sum(cost.macs(space.sample(rng)) <= limit for _ in range(samples))
    reachable = cost.macs(space.smallest()) <= limit
    found = seconds = None
    if reachable and hits == 0:
        t0 = time.perf_counter()
        band = BandSampler(space, cost, rejection_draws=0)
        found = len({band.chain(random.Random(f"{seed}:{i}"), limit) for i in range(_BAND_DRAWS)})
        seconds = time.perf_counter() - t0
    return BudgetFit(
        budget=budget,
        macs=limit,
        fraction=hits / samples,
        samples=samples,
        reachable=reachable,
        band_found=found,
        band_seconds=seconds,
    )


def unreachable_message(budget: Budget, smallest_macs: int, anchor_macs: int) -> str:
    """``budget``, a fraction of the anchor's MACs, is below the smallest model."""
    return (
        f"budget {budget.text} ({budget.macs(anchor_macs):,} MACs) is below the smallest "
        f"model's {format_fraction(smallest_macs / anchor_macs)} ({smallest_macs:,} MACs)"
    )


def lower_reach_advice(space: SearchSpace) -> str:
    """What reaches a budget under ``space``'s smallest model."""
    sibling = elastic_sibling(space.name, space.backbone)
    if sibling is not None and not (space.depth_units or space.resolution_unit):
        return (
            f"the shipped space {sibling} adds input resolution and depth as units and "
            f"reaches lower (slimda-nas space show {sibling})"
        )
    return (
        "a budget under the smallest model needs narrower widths in the space file, or fewer "
        "blocks (`depth:`) and lower input sizes (`input: {sizes: [...]}`) where the backbone "
        'allows them (docs/method.md, "Elastic depth and input resolution")'
    )


def check_reachable(budget: Budget, smallest_macs: int, anchor_macs: int) -> None:
    """Refuse a budget no configuration fits (fractions are of the anchor's MACs: the largest
    model's unless the scoring settings name another anchor)."""
    if budget.macs(anchor_macs) < smallest_macs:
        raise BudgetError(unreachable_message(budget, smallest_macs, anchor_macs))


def _uniform_ratios(space: SearchSpace) -> list[float]:
    """Ratios every width unit offers (the common uniform widths), else a coarse ladder."""
    common = None
    for u in space.width_units:
        ratios = {round(c / u.full, 4) for c in u.channel_choices}
        common = ratios if common is None else common & ratios
    return sorted(common) if common else [0.25, 0.5, 0.75, 1.0]


def reach_text(s: SpaceSummary) -> str:
    """The budgets a search of this space can meet, said before anything is trained."""
    return (
        f"reachable budgets: {format_fraction(s.smallest_fraction)} to 1 of the largest model's "
        f"{s.largest_macs:,} MACs (the smallest model costs {s.smallest_macs:,} MACs)"
    )


def budget_reach(s: SpaceSummary, budgets: list[Budget]) -> tuple[list[str], list[str]]:
    """One line per budget, reachable or not, and the lines of the unreachable ones."""
    lines, unreachable = [], []
    for b in budgets:
        if b.macs(s.largest_macs) < s.smallest_macs:
            line = "unreachable: " + unreachable_message(b, s.smallest_macs, s.largest_macs)
            unreachable.append(line)
        else:
            line = f"budget {b.text} ({b.macs(s.largest_macs):,} MACs): reachable"
        lines.append(line)
    return lines, unreachable
