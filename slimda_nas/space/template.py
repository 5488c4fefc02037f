"""A commented starting search space for a backbone (``slimda-nas space init``)."""

from __future__ import annotations

from slimda_nas.backbones import build_backbone
from slimda_nas.space._model import make_divisible

_HEADER = """\
# Search space for {backbone}, written by `slimda-nas space init`.
# A unit sets the output channels of its layers (layers added by a residual connection share
# one unit). Widths are ratios of the full width, rounded to `divisor`, never below
# `min_channels`; or give `channels: [...]` counts instead. Keep a layer fixed with
# `widths: [1.0]`. A unit's own fields override `defaults`. Check with
# `slimda-nas space validate FILE` and see the MACs range with `slimda-nas space show FILE`.
"""


def default_space_yaml(backbone: str, input_size: int | None = None, in_channels: int = 3) -> str:
    """YAML text of a space with every searchable layer of ``backbone`` in a unit."""
    model = build_backbone(backbone, num_classes=10)
    size = input_size or getattr(model, "default_input_size", 224)
    layers = model.searchable_layers()
    d = model.space_defaults
    lines = [_HEADER.format(backbone=backbone)]
    lines.append(f"backbone: {backbone}")
    lines.append(f"input: {{channels: {in_channels}, size: {size}}}   # fixed stem input")
    lines.append("defaults:")
    lines.append(f"  widths: [{', '.join(str(w) for w in d['widths'])}]")
    lines.append(f"  divisor: {d['divisor']}")
    lines.append(f"  min_channels: {d['min_channels']}")
    lines.append("units:")
    for name, unit_layers in model.default_units().items():
        full = layers[unit_layers[0]]
        note = f"# {full} channels at full width"
        if len(unit_layers) > 1:
            note += f", {len(unit_layers)} layers added together"
        fields = []
        if unit_layers != [name]:
            fields.append(f"layers: [{', '.join(unit_layers)}]")
        widths = _distinct_widths(d["widths"], full, d["divisor"], d["min_channels"])
        if widths != list(d["widths"]):
            fields.append(f"widths: [{', '.join(str(w) for w in widths)}]")
            note += " (narrow layer: fewer widths)"
        lines.append(f"  {_key(name)}: {{{', '.join(fields)}}}   {note}")
    return "\n".join(lines) + "\n"


def _distinct_widths(
    widths: list[float], full: int, divisor: int, min_channels: int
) -> list[float]:
    """The default widths minus those that round to the channel count of a wider one."""
    keep: dict[int, float] = {}
    for w in widths:
        keep[min(full, make_divisible(w * full, divisor, min(min_channels, full)))] = w
    return sorted(keep.values())


def _key(name: str) -> str:
    return name if all(c.isalnum() or c in "._-" for c in name) else f"'{name}'"
