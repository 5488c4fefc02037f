"""Which sub-networks one training step trains (docs/method.md, "Sandwich sampling"), and progressive shrinking."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from slimda_nas.cost.budget import parse_budget
from slimda_nas.errors import ConfigError
from slimda_nas.space import Config, SearchSpace

if TYPE_CHECKING:
    from slimda_nas.cost.macs import CostModel

Open = tuple[int, ...]  # per unit: how many of its widest choices may be sampled


RANDOM_MODELS = ("units", "macs")
"""How a step's random models are drawn. ``units``: every unit's choice uniformly, which puts
most models in the middle of the MACs range (Lite0 with elastic depth and resolution: median
1/7.2 of the largest's MACs, none of 2,000 draws under 1/64). ``macs``: a MACs target first,
log-uniform between the narrowest open model and the largest (every halving of the MACs drawn as
often), then a random model just under it (AttentiveNAS, Wang et al. 2021, draws a FLOPs target
first): budgets far below the middle get trained models of their own. On the Office-31 A->W
elastic bank it lowered the search's picks at every budget (BENCHMARKS.md section 12), so
``units`` is the default."""

SHRINKING_ORDERS = ("together", "ofa")
"""``together``: every unit shrinks at once; ``ofa``: once-for-all's order, the resolution
elastic from the start, then depth, then width."""


def sandwich_floor(space: SearchSpace, cost: CostModel, budget: str) -> tuple[int, ...]:
    """Unit indices of the sandwich's smallest model for a run's ``smallest_budget``: the widest
    uniform model within that budget of the largest's MACs.

    The space's narrowest model may lie far below every budget a bank serves, and the sandwich
    trains it at every step while the models a tight budget picks from are drawn rarely: on the
    Office-31 A->W elastic bank the narrowest (1/143.7 of the MACs) scored 38.6%, the uniform
    model at 1/64, twice its MACs, 36.6% (BENCHMARKS.md section 12). A floor at the smallest
    budget trains a model of that budget at every step instead.
    """
    largest = cost.macs(space.largest())
    limit = parse_budget(budget).macs(largest)
    ratio = cost.widest_uniform_ratio(limit)
    if ratio is None:
        narrowest = largest / cost.macs(space.smallest())
        raise ConfigError(
            f"field 'smallest_budget': {budget}: no uniform model of {space.source} fits "
            f"(its narrowest is 1/{narrowest:.1f} of the largest's MACs)"
        )
    return space.to_indices(space.uniform(ratio))


def open_choices(
    space: SearchSpace, progress: float, stages: int, fraction: float, order: str = "together"
) -> Open | None:
    """Progressive shrinking (once-for-all): at ``progress`` in [0, 1] of a phase, how many of
    each unit's widest choices are open; None when off.

    ``together``: the widest (stages + 1)-th of every unit's choices first, one more slice per
    stage, all of them from ``fraction`` of the phase on. ``ofa``: the resolution is open from
    the start; the first ``fraction`` of the phase is split between the depth units, then the
    width units (those the space has), and each opens like ``together`` in its own share,
    running at its largest choice before it (once-for-all, Cai et al. 2020: elastic resolution
    throughout, then depth, then width, so that small dimensions never train against an
    untrained large one).
    """
    if stages <= 0:
        return None
    if order == "together":
        return tuple(_opened(len(u.choices), progress / fraction, stages) for u in space.units)
    if order != "ofa":
        raise ValueError(f"shrinking order: expected one of {SHRINKING_ORDERS}, got {order!r}")
    groups = [
        g for g in (space.depth_units, space.width_units) if any(len(u.choices) > 1 for u in g)
    ]
    share = {u.name: (i, len(groups)) for i, g in enumerate(groups) for u in g}
    q = min(1.0, progress / fraction)
    out = []
    for u in space.units:
        if u.name not in share:  # the resolution, or a unit with one choice
            out.append(len(u.choices))
            continue
        i, n = share[u.name]
        local = q * n - i  # progress through this group's share of the window
        out.append(1 if local < 0 else _opened(len(u.choices), local, stages))
    return tuple(out)


def _opened(choices: int, progress: float, stages: int) -> int:
    """Open choices at ``progress`` of a shrinking window (1: its end) in ``stages`` stages."""
    stage = min(stages, math.floor(progress * stages))
    return max(1, math.ceil(choices * (stage + 1) / (stages + 1)))


def sample_model_batch(
    space: SearchSpace,
    m: int,
    seed: int,
    iteration: int,
    sandwich: bool = True,
    open_: Open | None = None,
    macs_of: Callable[[list[int]], int] | None = None,
    floor: Sequence[int] | None = None,
) -> list[Config]:
    """``m`` configurations for one step: with the sandwich rule the largest, the smallest and
    ``m - 2`` random ones (``m = 1``: the largest only); without it, ``m`` random ones. With
    ``open_`` (progressive shrinking) only each unit's widest open choices are drawn, and the
    smallest is the narrowest open one. With ``floor`` (unit indices, ``sandwich_floor``) the
    smallest is no narrower than it, unit by unit; the random ones still span the open choices.
    With ``macs_of`` (MACs of unit indices) the random ones are drawn by MACs
    (``RANDOM_MODELS``' ``macs``), else unit by unit.

    The draw depends only on (seed, iteration), so every DDP rank and every resumed run
    samples the same models without sharing any state.
    """
    rng = random.Random(f"{seed}:{iteration}")
    sizes = [len(u.choices) for u in space.units]
    first = (
        [0] * len(sizes) if open_ is None else [n - k for n, k in zip(sizes, open_, strict=True)]
    )
    smallest = space.from_indices(first if floor is None else list(map(max, first, floor)))
    if macs_of is not None:
        low, high = math.log(macs_of(first)), math.log(macs_of([n - 1 for n in sizes]))

        def sample():
            target = math.exp(rng.uniform(low, high))
            return space.from_indices(grow_under(sizes, first, macs_of, target, rng))

    else:  # the same draws as space.sample(rng) when every choice is open

        def sample():
            return space.from_indices([rng.randrange(lo, n) for n, lo in zip(sizes, first)])

    if not sandwich:
        return [sample() for _ in range(m)]
    if m == 1:
        return [space.largest()]
    return [space.largest(), smallest] + [sample() for _ in range(m - 2)]


def grow_under(
    sizes: list[int],
    first: list[int],
    macs_of: Callable[[list[int]], int],
    target: float,
    rng: random.Random,
) -> list[int]:
    """A random model just under ``target`` MACs: from the unit indices ``first``, widen a random
    unit one choice at a time, retiring a unit when its next choice would pass the target or it
    has none left, until every unit is retired (1-2 ms on Lite0)."""
    x = list(first)
    growing = [u for u, n in enumerate(sizes) if x[u] + 1 < n]
    while growing:
        u = growing[rng.randrange(len(growing))]
        x[u] += 1
        if macs_of(x) > target:
            x[u] -= 1
            growing.remove(u)
        elif x[u] + 1 == sizes[u]:
            growing.remove(u)
    return x
