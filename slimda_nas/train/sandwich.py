"""Which sub-networks one training step trains (SPEC 2.2), and progressive shrinking."""

from __future__ import annotations

import math
import random

from slimda_nas.space import Config, SearchSpace

Open = tuple[int, ...]  # per unit: how many of its widest choices may be sampled


def open_choices(space: SearchSpace, progress: float, stages: int, fraction: float) -> Open | None:
    """Progressive shrinking (once-for-all): at ``progress`` in [0, 1] of a phase, how many of
    each unit's widest choices are open. The widest (stages + 1)-th of the choices first, one
    more slice per stage, all of them from ``fraction`` of the phase on; None when off."""
    if stages <= 0:
        return None
    stage = min(stages, math.floor(progress / fraction * stages))
    return tuple(
        max(1, math.ceil(len(u.choices) * (stage + 1) / (stages + 1))) for u in space.units
    )


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
