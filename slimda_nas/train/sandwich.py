"""Which sub-networks one training step trains (SPEC 2.2)."""

from __future__ import annotations

import random

from slimda_nas.space import Config, SearchSpace


def sample_model_batch(
    space: SearchSpace, m: int, seed: int, iteration: int, sandwich: bool = True
) -> list[Config]:
    """``m`` configurations for one step: with the sandwich rule the largest, the smallest and
    ``m - 2`` random ones (``m = 1``: the largest only); without it, ``m`` random ones.

    The draw depends only on (seed, iteration), so every DDP rank and every resumed run
    samples the same models without sharing any state.
    """
    rng = random.Random(f"{seed}:{iteration}")
    if not sandwich:
        return [space.sample(rng) for _ in range(m)]
    if m == 1:
        return [space.largest()]
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(m - 2)]
