"""Elastic depth and input resolution: what a configuration sets on a bank besides widths.

As in once-for-all, the elastic dimensions live on the network, not in the training loop: a
backbone runs only the first ``active_depths[stage]`` blocks of an elastic stage (the skipped
blocks are residual, so skipping one is an identity), and resizes its input to
``active_resolution`` before the stem with :func:`resize_input`. Both are plain attributes,
like a layer's ``active_out``, set from a configuration by :func:`apply_setting`, the one path
that also sets the widths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor, nn

from slimda_nas.slim.ops import active_widths, set_widths


def resize_input(x: Tensor, size: int | None) -> Tensor:
    """The batch ``x`` (N, C, S, S) at ``size`` x ``size`` pixels.

    The data pipeline stores images at the space's largest resolution; a lower one is that
    image shrunk (bilinear, antialiased), in training, BN re-estimation, scoring, accuracy and
    export verification alike, so a sub-network sees the same pixels everywhere. ``None`` or
    the batch's own size returns ``x`` itself.
    """
    if size is None or (x.shape[-2] == size and x.shape[-1] == size):
        return x
    return F.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )


@dataclass(frozen=True)
class Setting:
    """What one configuration sets on a bank: layer widths (module name -> channels), stage
    depths (stage -> blocks run; absent: every block) and the input resolution (None: the
    input's own size)."""

    widths: Mapping[str, int] = field(default_factory=dict)
    depths: Mapping[str, int] = field(default_factory=dict)
    resolution: int | None = None


def depth_stages(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """Stages whose depth may be reduced -> their blocks' module names, in order (none for a
    model that is not an elastic backbone)."""
    stages = getattr(model, "depth_stages", None)
    return stages() if callable(stages) else {}


def set_depths(model: nn.Module, depths: Mapping[str, int]) -> None:
    """Run the first ``depths[stage]`` blocks of each named stage, every block of the others.

    A stage's first block changes the shape of its input, so it always runs (depth >= 1).
    """
    stages = depth_stages(model)
    unknown = set(depths) - set(stages)
    if unknown:
        raise KeyError(f"not elastic stages of this model: {sorted(unknown)}")
    active = {}
    for stage, k in depths.items():
        if not 1 <= k <= len(stages[stage]):
            raise ValueError(f"stage {stage!r}: depth {k} outside 1..{len(stages[stage])}")
        if k < len(stages[stage]):
            active[stage] = int(k)
    if active or hasattr(model, "active_depths"):
        model.active_depths = active


def set_resolution(model: nn.Module, size: int | None) -> None:
    """Resize the model's input to ``size`` x ``size`` from now on (None: as given)."""
    if size is not None and size < 1:
        raise ValueError(f"resolution {size} is not a positive size")
    if size is not None or hasattr(model, "active_resolution"):
        model.active_resolution = None if size is None else int(size)


def apply_setting(model: nn.Module, setting: Setting) -> None:
    """Set widths, depths and resolution together (what is left out runs at full size)."""
    set_widths(model, dict(setting.widths))
    set_depths(model, setting.depths)
    set_resolution(model, setting.resolution)


def current_setting(model: nn.Module) -> Setting:
    """The widths, depths and resolution ``model`` runs at now (to restore them later)."""
    return Setting(
        widths=active_widths(model),
        depths=dict(getattr(model, "active_depths", {})),
        resolution=getattr(model, "active_resolution", None),
    )


def skipped_blocks(model: nn.Module) -> list[str]:
    """Module names of the blocks the active depths skip."""
    stages = depth_stages(model)
    active = getattr(model, "active_depths", {})
    return [b for stage, k in active.items() for b in stages[stage][k:]]
