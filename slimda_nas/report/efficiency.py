"""Search efficiency: the best feasible UPEM a study had found after k UPEM evaluations, and
its mean and spread over the seeds of one sampler at one budget."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from slimda_nas.cost.budget import ResolvedBudget
from slimda_nas.search.studies import StudyRecord, sampler_label


@dataclass(kw_only=True)
class Curve:
    """Best-so-far UPEM of one sampler at one budget; ``mean[k-1]`` is after k evaluations.

    Entries are None before any seed found a feasible configuration.
    """

    sampler: str
    budget: str
    budget_macs: int
    seeds: list[int]
    mean: list[float | None]
    low: list[float | None]
    high: list[float | None]

    @property
    def final(self) -> float | None:
        return self.mean[-1] if self.mean else None


def best_so_far(study: StudyRecord, budget: ResolvedBudget | None = None) -> list[float]:
    """One entry per UPEM evaluation of ``study``: the least feasible UPEM known after it
    (re-proposals and cached scores count as known, not as evaluations). ``budget`` applies a
    budget to a Pareto study, whose own trials have none."""
    out, best = [], math.inf
    for p in study.points:
        if p.feasible if budget is None else budget.fits(p.macs):
            best = min(best, p.value)
        if p.evaluated:
            out.append(best)
    return out


def curves(studies: list[StudyRecord], budgets: list[ResolvedBudget]) -> list[Curve]:
    """Curves per (sampler, budget): single-budget studies at their budget, Pareto studies at
    every budget of the report."""
    groups: dict[tuple[str, int], list[tuple[int, list[float]]]] = defaultdict(list)
    names = {b.macs: b.text for b in budgets}
    for s in studies:
        if s.budget is not None:
            names.setdefault(s.budget.macs, s.budget.text)
            targets = [(s.budget.macs, None)]
        else:
            targets = [(b.macs, b) for b in budgets]
        for macs, limit in targets:
            values = best_so_far(s, limit)
            if values:
                groups[(sampler_label(s), macs)].append((s.seed, values))
    out = []
    for (sampler, macs), runs in sorted(groups.items(), key=lambda g: (-g[0][1], g[0][0])):
        n = max(len(v) for _, v in runs)
        grid = np.full((len(runs), n), np.nan)
        for i, (_, values) in enumerate(runs):
            row = np.array(values + [values[-1]] * (n - len(values)), dtype=float)
            row[~np.isfinite(row)] = np.nan
            grid[i] = row
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: none feasible yet
            mean, low, high = np.nanmean(grid, 0), np.nanmin(grid, 0), np.nanmax(grid, 0)
        out.append(
            Curve(
                sampler=sampler,
                budget=names[macs],
                budget_macs=macs,
                seeds=sorted(seed for seed, _ in runs),
                mean=_listed(mean),
                low=_listed(low),
                high=_listed(high),
            )
        )
    return out


def _listed(a: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in a]
