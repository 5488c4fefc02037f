"""Loading and validating search-space YAML files.

Every error is a :class:`SpaceError` whose one-line message names the file, the unit and the
field, e.g. ``search_spaces/resnet50.yaml: unit 'layer2.out': field 'widths': width 1.5 is
above 1.0``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from slimda_nas._check import typed
from slimda_nas._shipped import is_bare_name, shipped_spaces
from slimda_nas._yaml import read_yaml
from slimda_nas.errors import ConfigError, SpaceError
from slimda_nas.space._elastic import check_sizes, depth_units, resolution_unit
from slimda_nas.space._model import DEPTH_PREFIX, RESOLUTION, SearchSpace, Unit

_TOP_FIELDS = ("backbone", "extends", "backbone_args", "input", "defaults", "units", "depth")
_UNIT_FIELDS = ("layers", "widths", "channels", "divisor", "min_channels")
_DEFAULT_FIELDS = ("widths", "channels", "divisor", "min_channels")


@typed
def load_space(path: str | Path) -> SearchSpace:
    """Read, merge (``extends``) and validate a search-space YAML file."""
    path = Path(path)
    raw = _read_with_extends(path, seen=())
    return space_from_dict(raw, source=str(path))


def resolve_space_path(value: str | Path, relative_to: Path | None = None) -> Path:
    """A space given as a path (relative to the config file, then the working directory) or as a
    shipped name like ``digits_cnn`` (``search_spaces/NAME.yaml`` here, else the package's)."""
    candidates = []
    p = Path(value)
    if relative_to is not None and not p.is_absolute():
        candidates.append(relative_to / p)
    candidates.append(p)
    if is_bare_name(value):
        candidates.append(Path("search_spaces") / f"{value}.yaml")
        shipped = shipped_spaces()
        if str(value) in shipped:
            candidates.append(shipped[str(value)])
    for c in candidates:
        if c.is_file():
            return c
    return candidates[0]


def space_from_dict(raw: Any, source: str = "<memory>") -> SearchSpace:
    """Validate an already-parsed space mapping (``source`` names it in errors)."""
    return _Validator(source).space(raw)


def _read_with_extends(path: Path, seen: tuple[Path, ...]) -> dict:
    raw = read_yaml(path, SpaceError)
    if raw is None:
        raise SpaceError(f"{path}: file is empty (expected a search space mapping)")
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: expected a mapping at the top level, got {_kind(raw)}")
    base_name = raw.get("extends")
    if base_name is None:
        return raw
    if not isinstance(base_name, str):
        raise SpaceError(f"{path}: field 'extends': expected a file name, got {base_name!r}")
    base_path = (path.parent / base_name).resolve()
    chain = (*seen, path.resolve())
    if base_path in chain:
        loop = " -> ".join(p.name for p in (*chain[chain.index(base_path) :], base_path))
        raise SpaceError(f"{path}: field 'extends': {base_name!r} makes a cycle: {loop}")
    if base_path.is_dir():
        raise SpaceError(
            f"{path}: field 'extends': {base_name!r} is a folder, expected a search-space file"
        )
    if not base_path.is_file():
        raise SpaceError(
            f"{path}: field 'extends': {base_name!r} not found (looked for {base_path})"
        )
    base = _read_with_extends(base_path, chain)
    return _merge(base, {k: v for k, v in raw.items() if k != "extends"})


def _merge(base: dict, override: dict) -> dict:
    """Top-level keys override; ``defaults``, ``input``, ``depth`` and ``units`` merge key by
    key."""
    out = dict(base)
    out.pop("extends", None)
    for key, value in override.items():
        if key in ("defaults", "input", "backbone_args", "depth") and isinstance(value, dict):
            out[key] = {**(base.get(key) or {}), **value}
        elif key == "units" and isinstance(value, dict) and isinstance(base.get("units"), dict):
            units = dict(base["units"])
            for name, spec in value.items():
                if isinstance(spec, dict) and isinstance(units.get(name), dict):
                    units[name] = {**units[name], **spec}
                else:
                    units[name] = spec
            out["units"] = units
        else:
            out[key] = value
    return out


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string"}.get(type(value), repr(value))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Checked before any tensor is sized from them (``size: 100000`` died in the allocator).
MAX_INPUT_SIZE = 4096
MAX_INPUT_CHANNELS = 64


@functools.lru_cache(maxsize=32)
def _structure(backbone: str, args_json: str, in_channels: int, input_size: int):
    from slimda_nas.backbones import build_backbone

    model = build_backbone(
        backbone,
        num_classes=10,
        in_channels=in_channels,
        input_size=input_size,
        **json.loads(args_json),
    )
    return (
        model.searchable_layers(),
        tuple(model.tied_layers()),
        model.depth_stages(),
        model.elastic_resolution,
    )


class _Validator:
    def __init__(self, source: str) -> None:
        self.src = source

    def fail(self, msg: str) -> SpaceError:
        return SpaceError(f"{self.src}: {msg}")

    # -- top level ---------------------------------------------------------------------------
    def space(self, raw: Any) -> SearchSpace:
        if not isinstance(raw, dict):
            raise self.fail(f"expected a mapping at the top level, got {_kind(raw)}")
        for key in raw:
            if key not in _TOP_FIELDS:
                raise self.fail(
                    f"unknown field {key!r} (expected one of: {', '.join(_TOP_FIELDS)})"
                )
        backbone = self.backbone(raw.get("backbone"))
        args = raw.get("backbone_args") or {}
        if not isinstance(args, dict):
            raise self.fail(f"field 'backbone_args': expected a mapping, got {_kind(args)}")
        in_channels, input_size, sizes = self.input(raw.get("input"))
        defaults = self.defaults(raw.get("defaults"))
        try:
            layers, ties, stages, elastic_resolution = _structure(
                backbone, json.dumps(args, sort_keys=True), in_channels, input_size
            )
        except (TypeError, ValueError) as e:
            if "input_size" in str(e):  # the backbone's rule for its input, not an argument
                raise self.fail(f"field 'input.size': {backbone} refused it: {e}") from None
            raise self.fail(f"field 'backbone_args': {backbone} refused them: {e}") from None
        units_raw = raw.get("units")
        if not isinstance(units_raw, dict) or not units_raw:
            raise self.fail(
                f"field 'units': expected a non-empty mapping of units, got {_kind(units_raw)}"
            )
        units = [
            self.unit(name, spec, defaults, layers, backbone) for name, spec in units_raw.items()
        ]
        self.check_coverage(units, layers, ties)
        units += depth_units(self.fail, raw.get("depth"), stages, backbone)
        if sizes is not None:
            units.append(
                resolution_unit(self.fail, sizes, input_size, elastic_resolution, backbone)
            )
        return SearchSpace(
            backbone=backbone,
            input_channels=in_channels,
            input_size=input_size,
            units=tuple(units),
            backbone_args=args,
            source=self.src,
        )

    def backbone(self, value: Any) -> str:
        from slimda_nas.backbones import list_backbones

        if value is None:
            raise self.fail(
                "field 'backbone': missing (expected one of: " + ", ".join(list_backbones()) + ")"
            )
        if value not in list_backbones():
            raise self.fail(
                f"field 'backbone': unknown backbone {value!r} (expected one of: {', '.join(list_backbones())})"
            )
        return value

    def input(self, value: Any) -> tuple[int, int, list[int] | None]:
        if not isinstance(value, dict):
            raise self.fail(
                f"field 'input': expected a mapping with channels and size, got {_kind(value)}"
            )
        for key in value:
            if key not in ("channels", "size", "sizes"):
                raise self.fail(f"field 'input.{key}': unknown (expected channels, size, sizes)")
        out = []
        for key in ("channels", "size"):
            v = value.get(key)
            if not _is_int(v) or v <= 0:
                raise self.fail(f"field 'input.{key}': expected a positive integer, got {v!r}")
            out.append(v)
        if not 8 <= out[1] <= MAX_INPUT_SIZE:
            raise self.fail(
                f"field 'input.size': expected pixels from 8 to {MAX_INPUT_SIZE}, got {out[1]}"
            )
        if out[0] > MAX_INPUT_CHANNELS:
            raise self.fail(
                f"field 'input.channels': expected at most {MAX_INPUT_CHANNELS}, got {out[0]}"
            )
        sizes = value.get("sizes")
        if sizes is not None:
            check_sizes(self.fail, sizes, out[1])
        return out[0], out[1], sizes

    def defaults(self, value: Any) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"field 'defaults': expected a mapping, got {_kind(value)}")
        for key in value:
            if key not in _DEFAULT_FIELDS:
                raise self.fail(
                    f"field 'defaults.{key}': unknown (expected one of: {', '.join(_DEFAULT_FIELDS)})"
                )
        if "widths" in value and "channels" in value:
            raise self.fail("field 'defaults': give widths or channels, not both")
        return value

    # -- units -------------------------------------------------------------------------------
    def unit(self, name: Any, spec: Any, defaults: dict, layers: dict, backbone: str) -> Unit:
        if not isinstance(name, str) or not name:
            raise self.fail(f"field 'units': unit names must be strings, got {name!r}")
        where = f"unit {name!r}"
        if name == RESOLUTION or name.startswith(DEPTH_PREFIX):
            raise self.fail(
                f"{where}: the name is reserved for the elastic units (input.sizes, depth:)"
            )
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise self.fail(f"{where}: expected a mapping of fields, got {_kind(spec)}")
        for key in spec:
            if key not in _UNIT_FIELDS:
                raise self.fail(
                    f"{where}: unknown field {key!r} (expected one of: {', '.join(_UNIT_FIELDS)})"
                )
        if "widths" in spec and "channels" in spec:
            raise self.fail(f"{where}: give widths or channels, not both")
        merged = {k: v for k, v in defaults.items() if k not in ("widths", "channels")}
        if "widths" not in spec and "channels" not in spec:
            merged.update({k: v for k, v in defaults.items() if k in ("widths", "channels")})
        merged.update(spec)

        unit_layers = merged.get("layers", [name])
        if isinstance(unit_layers, str):
            unit_layers = [unit_layers]
        if (
            not isinstance(unit_layers, list)
            or not unit_layers
            or not all(isinstance(x, str) for x in unit_layers)
        ):
            raise self.fail(
                f"{where}: field 'layers': expected a non-empty list of layer names, got {unit_layers!r}"
            )
        for layer in unit_layers:
            if layer not in layers:
                sample = ", ".join(list(layers)[:5])
                raise self.fail(
                    f"{where}: field 'layers': {layer!r} is not a slimmable layer of {backbone} "
                    f"(e.g. {sample}; `slimda-nas space init --backbone {backbone}` lists them all)"
                )
        if len(set(unit_layers)) != len(unit_layers):
            raise self.fail(f"{where}: field 'layers': a layer is listed twice")
        fulls = {layers[x] for x in unit_layers}
        if len(fulls) != 1:
            raise self.fail(
                f"{where}: field 'layers': layers of one unit need the same full width, got {sorted(fulls)}"
            )
        full = fulls.pop()

        divisor = merged.get("divisor", 1)
        if not _is_int(divisor) or divisor <= 0:
            raise self.fail(
                f"{where}: field 'divisor': expected a positive integer, got {divisor!r}"
            )
        min_channels = merged.get("min_channels", 1)
        if not _is_int(min_channels) or min_channels <= 0:
            raise self.fail(
                f"{where}: field 'min_channels': expected a positive integer, got {min_channels!r}"
            )
        if min_channels > full:
            raise self.fail(
                f"{where}: field 'min_channels': {min_channels} is above the full width {full}"
            )

        if "channels" in merged:
            kind, choices = (
                "channels",
                self.channel_choices(where, merged["channels"], full, divisor, min_channels),
            )
        elif "widths" in merged:
            kind, choices = "widths", self.width_choices(where, merged["widths"])
        else:
            raise self.fail(
                f"{where}: no width choices (set widths or channels here or in defaults)"
            )
        unit = Unit(name, tuple(unit_layers), full, kind, choices, divisor, min_channels)
        self.check_rounding(where, unit)
        return unit

    def width_choices(self, where: str, value: Any) -> tuple[float, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(
                f"{where}: field 'widths': expected a non-empty list of ratios in (0, 1], got {value!r}"
            )
        for v in value:
            if not _is_number(v):
                raise self.fail(f"{where}: field 'widths': expected numbers, got {v!r}")
            if v > 1.0:
                raise self.fail(f"{where}: field 'widths': width {v} is above 1.0")
            if not v > 0:  # also catches NaN
                raise self.fail(f"{where}: field 'widths': width {v} is not above 0")
        if any(b <= a for a, b in zip(value, value[1:])):
            raise self.fail(
                f"{where}: field 'widths': expected ascending ratios in (0, 1], got {value}"
            )
        return tuple(float(v) for v in value)

    def channel_choices(
        self, where: str, value: Any, full: int, divisor: int, minimum: int
    ) -> tuple[int, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(
                f"{where}: field 'channels': expected a non-empty list of channel counts, got {value!r}"
            )
        for v in value:
            if not _is_int(v) or v <= 0:
                raise self.fail(
                    f"{where}: field 'channels': expected positive integers, got {v!r}"
                )
            if v > full:
                raise self.fail(
                    f"{where}: field 'channels': {v} is above the layer's full width {full}"
                )
            if v < minimum:
                raise self.fail(f"{where}: field 'channels': {v} is below min_channels {minimum}")
            if v % divisor and v != full:
                raise self.fail(
                    f"{where}: field 'channels': {v} is not a multiple of divisor {divisor}"
                )
        if any(b <= a for a, b in zip(value, value[1:])):
            raise self.fail(
                f"{where}: field 'channels': expected ascending channel counts, got {value}"
            )
        return tuple(int(v) for v in value)

    def check_rounding(self, where: str, unit: Unit) -> None:
        chans = unit.channel_choices
        for (a, ca), (b, cb) in zip(zip(unit.choices, chans), zip(unit.choices[1:], chans[1:])):
            if cb < ca:
                raise self.fail(
                    f"{where}: field 'widths': {a} and {b} round to {ca} > {cb} channels"
                )
            if cb == ca:
                raise self.fail(
                    f"{where}: field 'widths': {a} and {b} both round to {ca} channels "
                    f"(full width {unit.full}, divisor {unit.divisor}); drop one"
                )

    # -- the whole ----------------------------------------------------------------------------
    def check_coverage(self, units: list[Unit], layers: dict, ties: tuple) -> None:
        owner: dict[str, str] = {}
        for u in units:
            for layer in u.layers:
                if layer in owner:
                    raise self.fail(
                        f"unit {u.name!r}: field 'layers': {layer!r} is already in unit {owner[layer]!r}"
                    )
                owner[layer] = u.name
        for layer in layers:
            if layer not in owner:
                raise self.fail(
                    f"layer {layer!r} is in no unit (add it to a unit; `widths: [1.0]` keeps it fixed)"
                )
        for group in ties:
            names = {owner[x] for x in group}
            if len(names) > 1:
                a, b = group[0], next(x for x in group if owner[x] != owner[group[0]])
                raise self.fail(
                    f"unit {owner[b]!r}: field 'layers': {b!r} is added to {a!r} (residual) but that "
                    f"layer is in unit {owner[a]!r}; layers added together need one unit"
                )


def load_config(path: str | Path, space: SearchSpace) -> dict:
    """Read a width configuration (YAML or JSON mapping unit -> width) and check it against ``space``."""
    raw = read_yaml(path, ConfigError)
    if isinstance(raw, dict) and "config" in raw and isinstance(raw["config"], dict):
        raw = raw["config"]  # records written by search/export keep the mapping under `config`
    return space.check_config(raw, origin=str(path))
