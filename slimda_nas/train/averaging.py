"""Tail weight averaging: a uniform running average of the bank's weights over the last part of
training (SWA's average, kept apart from the training loop; the learning rate is not touched)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch


class WeightAverage:
    """The uniform average of the floating-point tensors of the states it was given (a module's
    parameters and BN buffers); integer tensors (BN's batch counters) are the last seen."""

    def __init__(self, state: dict[str, torch.Tensor] | None = None, count: int = 0):
        self.state = state or {}
        self.count = count

    @torch.no_grad()
    def update(self, state: Mapping[str, torch.Tensor]) -> None:
        """Add one state (a module's ``state_dict()``) to the average."""
        self.count += 1
        for name, value in state.items():
            if self.count == 1 or not value.is_floating_point():
                self.state[name] = value.detach().clone()
            else:
                self.state[name].lerp_(value, 1.0 / self.count)

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state, "count": self.count}

    @classmethod
    def from_state_dict(cls, raw: dict[str, Any], device: torch.device) -> WeightAverage:
        return cls({k: v.to(device) for k, v in raw["state"].items()}, int(raw["count"]))


def joins_average(start: float | None, every: int, done: int, iterations: int) -> bool:
    """Whether the weights after adaptation iteration ``done`` (1-based) join the average: every
    ``every`` iterations counted back from the last (so the final weights always join), after the
    first ``start`` of the ``iterations``; never when ``start`` is None (off)."""
    if start is None:
        return False
    return done > math.ceil(start * iterations) and (iterations - done) % every == 0
