"""Which sub-networks one training step trains (docs/method.md, "Sandwich sampling"), and progressive shrinking."""

from __future__ import annotations

import math
import random

from slimda_nas.space import Config, SearchSpace

Open = tuple[int, ...]  # per unit: how many of its widest choices may be sampled


SHRINKING_ORDERS = ("together", "ofa")
"""``together``: every unit shrinks at once; ``ofa``: once-for-all's order, the resolution
elastic from the start, then depth, then width."""


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
) -> list[Config]:
    """``m`` configurations for one step: with the sandwich rule the largest, the smallest and
    ``m - 2`` random ones (``m = 1``: the largest only); without it, ``m`` random ones. With
    ``open_`` (progressive shrinking) only each unit's widest open choices are drawn, and the
    smallest is the narrowest open one.

    The draw depends only on (seed, iteration), so every DDP rank and every resumed run
    samples the same models without sharing any state.
    """
    rng = random.Random(f"{seed}:{iteration}")
    if open_ is None:
        sample, smallest = (lambda: space.sample(rng)), space.smallest()
    else:
        first = [len(u.choices) - k for u, k in zip(space.units, open_, strict=True)]
        smallest = space.from_indices(first)

        def sample():
            return space.from_indices(
                [rng.randrange(lo, len(u.choices)) for u, lo in zip(space.units, first)]
            )

    if not sandwich:
        return [sample() for _ in range(m)]
    if m == 1:
        return [space.largest()]
    return [space.largest(), smallest] + [sample() for _ in range(m - 2)]
