"""Configurations within a MACs band: drawn (near-)uniformly among those that fit, and proposals
repaired to fit.

At tight budgets almost no uniformly drawn configuration fits (digits at 1/64: 1 in 1,200;
ResNet-50 at 1/16: none in 5,000), so plain rejection sampling stalls. :class:`BandSampler`
rejects a few hundred draws, then walks a Markov chain over the band: move one unit one step,
keep the move when the result stays in the band. The moves are symmetric, so the chain's
stationary distribution is uniform over the band; each draw is a fresh seeded chain, hence
deterministic and independent of the others.

With elastic depth, configurations that differ only in the widths of skipped blocks are the same
network: every configuration returned here is normalized (``SearchSpace.normalize_indices``),
so distinct results are distinct networks.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from slimda_nas.cost.macs import CostModel
from slimda_nas.errors import BudgetError
from slimda_nas.space import SearchSpace

Indices = tuple[int, ...]


class BandSampler:
    """Draws configurations whose MACs lie in ``[low, high]``."""

    def __init__(
        self,
        space: SearchSpace,
        cost: CostModel,
        rejection_draws: int = 500,
        steps_per_unit: int = 40,
    ) -> None:
        self.space, self.cost = space, cost
        self.sizes = [len(u.choices) for u in space.units]
        self.rejection_draws = rejection_draws
        self.steps = steps_per_unit * len(space.units)

    def macs(self, indices: Sequence[int]) -> int:
        return self.cost.macs_of_indices(indices)

    def sample(self, rng: random.Random, high: int, low: int = 0) -> tuple[Indices, int | None]:
        """(unit indices, uniform draws it took); draws is None when the chain found it."""
        for draws in range(1, self.rejection_draws + 1):
            x = tuple(rng.randrange(n) for n in self.sizes)
            if low <= self.macs(x) <= high:
                return self.space.normalize_indices(x), draws
        return self.chain(rng, high, low), None

    def chain(self, rng: random.Random, high: int, low: int = 0) -> Indices:
        """The end of a random walk over the band, started from a random configuration
        repaired into it."""
        start = tuple(rng.randrange(n) for n in self.sizes)
        x = list(repair(self, start, high) or self.smallest_index())
        x = self._grow_into(x, low, high, rng)
        for _ in range(self.steps):
            u = rng.randrange(len(x))
            step = rng.choice((-1, 1))
            if not 0 <= x[u] + step < self.sizes[u]:
                continue
            x[u] += step
            if not low <= self.macs(x) <= high:
                x[u] -= step
        return self.space.normalize_indices(x)

    def smallest_index(self) -> Indices:
        return tuple(0 for _ in self.sizes)

    def enumerate(self, high: int, limit: int) -> list[Indices] | None:
        """Every configuration within ``high`` MACs, in index order, when there are at most
        ``limit`` of them; None when there are more (digits at 1/64: 720 of 10^6).

        MACs never fall as a unit widens (ascending choices, non-negative terms), so once a
        prefix with every later unit at its narrowest is over the budget, so is everything
        wider: the walk visits little more than the configurations it returns.
        """
        found: list[Indices] = []
        x = [0] * len(self.sizes)
        # the elastic units first: once the depths are set, a width unit they make irrelevant
        # is walked at its first choice only, so each network is listed once
        widths = {i for i, u in enumerate(self.space.units) if u.is_width}
        order = [i for i in range(len(x)) if i not in widths] + sorted(widths)
        hideable = self.space.hideable_units

        def walk(k: int) -> bool:  # False: more than ``limit``, stop
            if k == len(order):
                found.append(tuple(x))
                return len(found) <= limit
            u = order[k]
            more = True
            hidden = u in hideable and u in self.space.hidden_units(x)
            for i in range(1 if hidden else self.sizes[u]):
                x[u] = i
                if self.macs(x) > high:
                    break
                if not walk(k + 1):
                    more = False
                    break
            x[u] = 0
            return more

        walk(0)
        found.sort()
        return found if len(found) <= limit else None

    def _grow_into(self, x: list[int], low: int, high: int, rng: random.Random) -> list[int]:
        """Widen random units one step at a time until the MACs reach ``low``."""
        if self.macs(x) > high:
            raise BudgetError(f"no configuration fits {high:,} MACs")
        while self.macs(x) < low:
            options = [
                u
                for u in range(len(x))
                if x[u] + 1 < self.sizes[u] and self.macs(_moved(x, u, 1)) <= high
            ]
            if not options:
                raise BudgetError(
                    f"no configuration has between {low:,} and {high:,} MACs in {self.space.source}"
                )
            u = rng.choice(options)
            x[u] += 1
        return x


def repair(
    sampler: BandSampler, indices: Sequence[int], high: int, keep: Callable | None = None
) -> Indices | None:
    """The proposal shrunk to fit ``high`` MACs, keeping its shape: every unit's index scaled by
    the largest common factor that fits, then units widened back (most reduced first, never
    above the proposal) while the budget holds. None when not even the smallest model fits.

    ``keep`` (optional) must accept the result; a repaired configuration it refuses (already
    scored, say) is moved to its nearest accepted neighbour.
    """
    x = tuple(indices)
    if sampler.macs(x) <= high and (keep is None or keep(x)):
        return x
    if sampler.macs(sampler.smallest_index()) > high:
        return None
    lo, hi = 0.0, 1.0
    for _ in range(20):  # bisection on the common factor
        mid = (lo + hi) / 2
        if sampler.macs(_scaled(x, mid)) <= high:
            lo = mid
        else:
            hi = mid
    y = list(_scaled(x, lo))
    changed = True
    while changed:  # give back what the scaling took, most reduced unit first
        changed = False
        for u in sorted(range(len(y)), key=lambda u: (y[u] - x[u], u)):
            if y[u] < x[u] and sampler.macs(_moved(y, u, 1)) <= high:
                y[u] += 1
                changed = True
    y = tuple(y)
    if keep is not None and not keep(y):
        return nearest(sampler, y, lambda z: sampler.macs(z) <= high and keep(z))
    return y


def nearest(
    sampler: BandSampler,
    indices: Sequence[int],
    accept: Callable,
    radius: int = 3,
    max_checks: int = 2000,
) -> Indices | None:
    """The accepted configuration fewest one-step moves from ``indices`` (ties: seeded by the
    configuration, so the same input gives the same answer), within ``radius`` moves and
    ``max_checks`` candidates."""
    start = tuple(indices)
    rng = random.Random(",".join(map(str, start)))
    seen, frontier = {start}, [start]
    for _ in range(radius):
        nxt = []
        for x in frontier:
            moves = [(u, s) for u in range(len(x)) for s in (1, -1)]
            rng.shuffle(moves)
            for u, s in moves:
                if 0 <= x[u] + s < sampler.sizes[u]:
                    y = tuple(_moved(x, u, s))
                    if y not in seen:
                        seen.add(y)
                        if accept(y):
                            return y
                        if len(seen) > max_checks:
                            return None
                        nxt.append(y)
        frontier = nxt
    return None


def _scaled(x: Sequence[int], factor: float) -> Indices:
    return tuple(math.floor(factor * i + 1e-9) for i in x)


def _moved(x: Sequence[int], u: int, step: int) -> list[int]:
    y = list(x)
    y[u] += step
    return y
