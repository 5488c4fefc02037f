"""The elastic units of a space file: ``input.sizes`` (the input resolution) and ``depth:``
(leading blocks per stage), checked field by field like the width units.

``fail`` turns a message into the loader's one-line :class:`SpaceError` naming the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from slimda_nas.errors import SpaceError
from slimda_nas.space._model import DEPTH_PREFIX, RESOLUTION, Unit

Fail = Callable[[str], SpaceError]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_sizes(fail: Fail, sizes: Any, size: int) -> None:
    """``input.sizes``: ascending pixel sizes ending at ``input.size`` (the stored images)."""
    where = "field 'input.sizes'"
    if not isinstance(sizes, list) or not sizes or not all(_is_int(v) for v in sizes):
        raise fail(f"{where}: expected a list of pixel sizes, got {sizes!r}")
    if any(b <= a for a, b in zip(sizes, sizes[1:])) or sizes[0] < 8:
        raise fail(f"{where}: expected ascending sizes of at least 8, got {sizes}")
    if sizes[-1] != size:
        raise fail(
            f"{where}: the largest must be input.size ({size}, the size images are "
            f"stored at and the anchor runs at), got {sizes[-1]}"
        )


def resolution_unit(fail: Fail, sizes: list[int], size: int, elastic: bool, backbone: str) -> Unit:
    """The ``resolution`` unit (its choices are pixels; the largest is the stored size)."""
    if not elastic and len(sizes) > 1:
        raise fail(
            f"field 'input.sizes': {backbone} runs at one input size only (its layers "
            f"read fixed-size maps); give input.size alone"
        )
    return Unit(RESOLUTION, (), size, "resolution", tuple(sizes), 1, 1)


def depth_units(
    fail: Fail, value: Any, stages: Mapping[str, tuple[str, ...]], backbone: str
) -> list[Unit]:
    """One unit per elastic stage named in ``depth:``: the numbers of leading blocks it may run
    (its layers are the stage's blocks, ``stages`` the backbone's ``depth_stages()``)."""
    if value is None:
        return []
    if not isinstance(value, dict) or not value:
        raise fail(f"field 'depth': expected a mapping stage -> depths in blocks, got {value!r}")
    units = []
    for stage, choices in value.items():
        where = f"field 'depth.{stage}'"
        if stage not in stages:
            offered = ", ".join(stages) or "none: it has no skippable residual blocks"
            raise fail(f"{where}: not an elastic stage of {backbone} (elastic stages: {offered})")
        n = len(stages[stage])
        if (
            not isinstance(choices, list)
            or not choices
            or not all(_is_int(v) and 1 <= v <= n for v in choices)
            or any(b <= a for a, b in zip(choices, choices[1:]))
        ):
            raise fail(f"{where}: expected ascending block counts from 1 to {n}, got {choices!r}")
        if choices[-1] != n:
            raise fail(
                f"{where}: the largest must be the stage's {n} blocks (the anchor is the "
                f"whole network), got {choices[-1]}"
            )
        name = f"{DEPTH_PREFIX}{stage}"
        units.append(Unit(name, stages[stage], n, "depth", tuple(choices), 1, 1, stage=stage))
    return units
