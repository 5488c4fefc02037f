"""The in-memory search space: units, their width choices, and configurations over them."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from slimda_nas.errors import ConfigError
from slimda_nas.slim.elastic import Setting

Width = float | int
Config = dict[str, Width]
"""A configuration: unit name -> a value from that unit's choices (a width ratio, a channel
count, a stage's depth in blocks, or the input resolution in pixels)."""

RESOLUTION = "resolution"
"""The name of the input-resolution unit (``input.sizes`` in a space file)."""
DEPTH_PREFIX = "depth."
"""Depth units are named ``depth.<stage>`` (``depth:`` in a space file)."""
_NOUN = {"widths": "width", "channels": "width", "depth": "depth", "resolution": "resolution"}


def make_divisible(value: float, divisor: int, min_value: int) -> int:
    """Round to the nearest multiple of ``divisor``, never below ``min_value`` or 10% under."""
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class Unit:
    """A searchable dimension: a width shared by one or more layers (a tied group for residual
    additions), or an elastic unit, a stage's depth or the input resolution.

    Elastic units have no layers; their choices are counts (blocks, pixels) and ``full`` is the
    largest, so that widths, depths and resolutions are ordered, sampled and shrunk alike.
    """

    name: str
    layers: tuple[str, ...]  # depth units: the stage's blocks (module names), in order
    full: int
    kind: Literal["widths", "channels", "depth", "resolution"]
    choices: tuple[Width, ...]
    divisor: int
    min_channels: int
    stage: str | None = None  # depth units: the backbone stage whose blocks they count

    @property
    def is_width(self) -> bool:
        return self.kind in ("widths", "channels")

    def channels(self, value: Width) -> int:
        """Channel count of a choice value (blocks or pixels for an elastic unit)."""
        if self.kind != "widths":
            return int(value)
        return min(
            self.full, make_divisible(float(value) * self.full, self.divisor, self.min_channels)
        )

    @property
    def channel_choices(self) -> tuple[int, ...]:
        return tuple(self.channels(v) for v in self.choices)

    def index_of(self, value: Width) -> int:
        for i, v in enumerate(self.choices):
            if math.isclose(float(v), float(value), rel_tol=1e-9, abs_tol=1e-12):
                return i
        raise ValueError(value)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space bound to its backbone's layers."""

    backbone: str
    input_channels: int
    input_size: int
    units: tuple[Unit, ...]
    backbone_args: Mapping[str, object] = field(default_factory=dict)
    source: str = "<memory>"

    # -- lookups ---------------------------------------------------------------------------
    @property
    def unit_names(self) -> tuple[str, ...]:
        return tuple(u.name for u in self.units)

    def unit(self, name: str) -> Unit:
        for u in self.units:
            if u.name == name:
                return u
        raise KeyError(name)

    @property
    def size(self) -> int:
        """Number of distinct configurations."""
        return math.prod(len(u.choices) for u in self.units)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The stored images' shape (the largest resolution)."""
        return (self.input_channels, self.input_size, self.input_size)

    @property
    def width_units(self) -> tuple[Unit, ...]:
        return tuple(u for u in self.units if u.is_width)

    @property
    def depth_units(self) -> tuple[Unit, ...]:
        return tuple(u for u in self.units if u.kind == "depth")

    @property
    def resolution_unit(self) -> Unit | None:
        return next((u for u in self.units if u.kind == "resolution"), None)

    @property
    def input_sizes(self) -> tuple[int, ...]:
        """The input resolutions a configuration may run at (the stored size alone by default)."""
        u = self.resolution_unit
        return (self.input_size,) if u is None else tuple(int(v) for v in u.choices)

    def resolution(self, config: Mapping[str, Width]) -> int:
        """The input side ``config`` runs at."""
        return self.input_size if self.resolution_unit is None else int(config[RESOLUTION])

    def input_shape_at(self, config: Mapping[str, Width]) -> tuple[int, int, int]:
        """The shape of one input of ``config``'s network (what an export takes)."""
        size = self.resolution(config)
        return (self.input_channels, size, size)

    # -- configurations --------------------------------------------------------------------
    def largest(self) -> Config:
        return {u.name: u.choices[-1] for u in self.units}

    def smallest(self) -> Config:
        return {u.name: u.choices[0] for u in self.units}

    def uniform(self, ratio: float) -> Config:
        """Every unit at the widest choice whose channels are at most ``ratio`` of full width
        (its smallest choice where none is)."""
        out: Config = {}
        for u in self.units:
            fitting = [
                v for v, c in zip(u.choices, u.channel_choices) if c <= ratio * u.full + 1e-9
            ]
            out[u.name] = fitting[-1] if fitting else u.choices[0]
        return out

    def uniform_ratios(self) -> list[float]:
        """The ratios shared by the units' choices, for the uniform-width baseline."""
        ratios = sorted({round(c / u.full, 6) for u in self.units for c in u.channel_choices})
        return ratios

    def sample(self, rng: random.Random) -> Config:
        """A configuration with every unit's choice drawn uniformly."""
        return {u.name: u.choices[rng.randrange(len(u.choices))] for u in self.units}

    def to_indices(self, config: Mapping[str, Width]) -> tuple[int, ...]:
        self.check_config(config)
        return tuple(u.index_of(config[u.name]) for u in self.units)

    def from_indices(self, indices: tuple[int, ...] | list[int]) -> Config:
        if len(indices) != len(self.units):
            raise ConfigError(f"expected {len(self.units)} indices, got {len(indices)}")
        return {u.name: u.choices[i] for u, i in zip(self.units, indices)}

    def check_config(self, config: Mapping[str, object], origin: str = "configuration") -> Config:
        """Validate a configuration and return it with values normalised to the declared choices."""
        if not isinstance(config, Mapping):
            raise ConfigError(
                f"{origin}: expected a mapping unit -> width, got {type(config).__name__}"
            )
        missing = [n for n in self.unit_names if n not in config]
        unknown = [k for k in config if k not in self.unit_names]
        if unknown:
            raise ConfigError(
                f"{origin}: unit {unknown[0]!r} is not in space {self.source} "
                f"(units: {', '.join(self.unit_names[:6])}{'...' if len(self.units) > 6 else ''})"
            )
        if missing:
            raise ConfigError(f"{origin}: unit {missing[0]!r}: missing (every unit needs a width)")
        out: Config = {}
        for u in self.units:
            value = config[u.name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{origin}: unit {u.name!r}: expected a number, got {value!r}")
            try:
                out[u.name] = u.choices[u.index_of(value)]
            except ValueError:
                raise ConfigError(
                    f"{origin}: unit {u.name!r}: {_NOUN[u.kind]} {value!r} is not one of "
                    f"{list(u.choices)}"
                ) from None
        return out

    def layer_widths(self, config: Mapping[str, Width]) -> dict[str, int]:
        """Channels of every searchable layer under ``config``."""
        config = self.check_config(config)
        return {layer: u.channels(config[u.name]) for u in self.width_units for layer in u.layers}

    @functools.cached_property
    def _hidden_by(self) -> tuple[tuple[int, tuple[tuple[int, int], ...]], ...]:
        """Width units whose every layer lies in a block a depth unit may skip: (unit index,
        per layer (depth unit index, blocks that must run for the layer to run))."""
        gates = {
            block: (i, j + 1)
            for i, u in enumerate(self.units)
            if u.kind == "depth"
            for j, block in enumerate(u.layers)
        }
        out = []
        for i, u in enumerate(self.units):
            if not u.is_width:
                continue
            per_layer = [
                next((g for b, g in gates.items() if x.startswith(b + ".")), None)
                for x in u.layers
            ]
            if per_layer and all(g is not None for g in per_layer):
                out.append((i, tuple(per_layer)))
        return tuple(out)

    def normalize_indices(self, indices: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        """One index tuple per network: a width unit whose layers all lie in blocks the depths
        skip changes nothing, so it is set to its first choice (configurations that differ only
        there are the same sub-network, and are scored once)."""
        out = list(indices)
        for i in self.hidden_units(indices):
            out[i] = 0
        return tuple(out)

    @property
    def hideable_units(self) -> frozenset[int]:
        """Indices of the width units some depths make irrelevant (none without depth units)."""
        return frozenset(i for i, _ in self._hidden_by)

    def hidden_units(self, indices: tuple[int, ...] | list[int]) -> list[int]:
        """Indices of the width units the depths in ``indices`` make irrelevant."""
        return [
            i
            for i, per_layer in self._hidden_by
            if all(self.units[d].choices[indices[d]] < need for d, need in per_layer)
        ]

    def normalize(self, config: Mapping[str, Width]) -> Config:
        """:meth:`normalize_indices` of a configuration."""
        return self.from_indices(self.normalize_indices(self.to_indices(config)))

    def unit_channels(self, config: Mapping[str, Width]) -> dict[str, int]:
        """Per unit: channels, or blocks / pixels for the elastic units."""
        config = self.check_config(config)
        return {u.name: u.channels(config[u.name]) for u in self.units}

    def setting(self, config: Mapping[str, Width]) -> Setting:
        """What ``config`` sets on the bank: layer widths, stage depths, input resolution."""
        config = self.check_config(config)
        return Setting(
            widths=self.layer_widths(config),
            depths={u.stage: int(config[u.name]) for u in self.depth_units},
            resolution=None if self.resolution_unit is None else int(config[RESOLUTION]),
        )

    # -- identity ----------------------------------------------------------------------------
    def canonical(self) -> dict:
        """What defines the space (no comments, no file name): hashed into checkpoints. The
        elastic units appear only where a space has them, so older spaces keep their hash."""
        out = {
            "backbone": self.backbone,
            "backbone_args": dict(self.backbone_args),
            "input": self._input_dict(),
            "units": [
                {"name": u.name, "layers": list(u.layers), "channels": list(u.channel_choices)}
                for u in self.width_units
            ],
        }
        if self.depth_units:
            out["depth"] = self._depth_dict()
        return out

    def to_dict(self) -> dict:
        """A mapping :func:`~slimda_nas.space.space_from_dict` loads back to an equal space."""
        out = {
            "backbone": self.backbone,
            "backbone_args": dict(self.backbone_args),
            "input": self._input_dict(),
            "units": {
                u.name: {
                    "layers": list(u.layers),
                    u.kind: list(u.choices),
                    "divisor": u.divisor,
                    "min_channels": u.min_channels,
                }
                for u in self.width_units
            },
        }
        if self.depth_units:
            out["depth"] = self._depth_dict()
        return out

    def _input_dict(self) -> dict:
        out: dict = {"channels": self.input_channels, "size": self.input_size}
        if self.resolution_unit is not None:
            out["sizes"] = list(self.input_sizes)
        return out

    def _depth_dict(self) -> dict[str, list[int]]:
        return {u.stage: [int(v) for v in u.choices] for u in self.depth_units}

    @property
    def hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def build(self, num_classes: int, heads=("fc",), weights=None):
        """Build this space's backbone (the model bank at full width)."""
        from slimda_nas.backbones import build_backbone

        return build_backbone(
            self.backbone,
            num_classes=num_classes,
            heads=heads,
            weights=weights,
            in_channels=self.input_channels,
            input_size=self.input_size,
            **dict(self.backbone_args),
        )

    @property
    def name(self) -> str:
        return Path(self.source).stem if self.source != "<memory>" else self.backbone
