"""Elastic units in a space file: ``input.sizes`` (resolution) and ``depth:`` (blocks per stage);
old spaces are unchanged, bad fields are one line naming the file and field."""

from __future__ import annotations

import textwrap

import pytest

from slimda_nas.errors import ConfigError, SpaceError
from slimda_nas.space import load_space, space_from_dict
from tests.conftest import SPACES

LITE = """\
extends: {base}
input: {channels: 3, size: 224, sizes: [128, 192, 224]}
depth:
  stage3: [1, 3]
"""


def _elastic(tmp_path, text):
    p = tmp_path / "e.yaml"
    base = str(SPACES.resolve() / "efficientnet_lite0.yaml")
    p.write_text(textwrap.dedent(text).replace("{base}", base))
    return p


def test_elastic_units_follow_the_widths_and_round_trip(tmp_path):
    space = load_space(_elastic(tmp_path, LITE))
    assert space.unit_names[-2:] == ("depth.stage3", "resolution")
    assert space.input_sizes == (128, 192, 224) and space.input_size == 224
    depth = space.unit("depth.stage3")
    assert depth.choices == (1, 3) and depth.layers == ("_blocks.5", "_blocks.6", "_blocks.7")
    assert space.largest()["resolution"] == 224 and space.smallest()["depth.stage3"] == 1
    again = space_from_dict(space.to_dict())
    assert again.hash == space.hash and again.units == space.units
    base = load_space(SPACES / "efficientnet_lite0.yaml")
    assert space.hash != base.hash and space.size == base.size * 2 * 3
    s = space.setting(dict(space.largest(), resolution=128, **{"depth.stage3": 1}))
    assert s.resolution == 128 and dict(s.depths) == {"stage3": 1}
    assert s.widths == base.layer_widths(base.largest())
    assert space.input_shape_at(space.smallest()) == (3, 128, 128)


def test_shipped_elastic_spaces_extend_the_old_ones():
    for name in ("efficientnet_lite0", "resnet50"):
        old, new = load_space(SPACES / f"{name}.yaml"), load_space(SPACES / f"{name}_elastic.yaml")
        assert new.canonical()["units"] == old.canonical()["units"]
        assert new.resolution_unit is not None and new.depth_units
    cpu = load_space(SPACES / "efficientnet_lite0_elastic_112.yaml")
    assert cpu.input_sizes == (64, 80, 96, 112)


def test_a_config_names_a_bad_depth_or_resolution(tmp_path):
    space = load_space(_elastic(tmp_path, LITE))
    with pytest.raises(ConfigError, match="unit 'resolution': resolution 100 is not one of"):
        space.check_config(dict(space.largest(), resolution=100))
    with pytest.raises(ConfigError, match="unit 'depth.stage3': depth 2 is not one of"):
        space.check_config(dict(space.largest(), **{"depth.stage3": 2}))


BAD = {
    "sizes not ending at size": (
        "input: {channels: 3, size: 224, sizes: [128, 192]}",
        "field 'input.sizes': the largest must be input.size (224",
    ),
    "sizes descending": (
        "input: {channels: 3, size: 224, sizes: [224, 128]}",
        "field 'input.sizes': expected ascending sizes",
    ),
    "sizes text": (
        "input: {channels: 3, size: 224, sizes: big}",
        "expected a list of pixel sizes",
    ),
    "unknown stage": ("depth: {stage9: [1]}", "field 'depth.stage9': not an elastic stage"),
    "one-block stage": ("depth: {stage0: [1]}", "field 'depth.stage0': not an elastic stage"),
    "depth zero": ("depth: {stage3: [0, 3]}", "expected ascending block counts from 1 to 3"),
    "depth not full": ("depth: {stage3: [1, 2]}", "the largest must be the stage's 3 blocks"),
    "depth not mapping": ("depth: [1, 2]", "field 'depth': expected a mapping"),
    "reserved unit name": (
        "units: {resolution: {layers: [_conv_head]}}",
        "unit 'resolution': the name is reserved",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_elastic_fields_are_one_line(tmp_path, case):
    line, needle = BAD[case]
    path = _elastic(tmp_path, "extends: {base}\n" + line + "\n")
    with pytest.raises(SpaceError) as e:
        load_space(path)
    msg = str(e.value)
    assert needle in msg and str(path) in msg and "\n" not in msg


def test_digits_offers_neither_depth_nor_resolution(tmp_path):
    digits = (SPACES / "digits_cnn.yaml").read_text()
    for line, needle in (
        ("depth: {conv2: [1]}", "not an elastic stage of digits_cnn (elastic stages: none"),
        ("input: {channels: 3, size: 32, sizes: [16, 32]}", "runs at one input size only"),
    ):
        p = tmp_path / "d.yaml"
        p.write_text(digits.replace("input: {channels: 3, size: 32}", "") + line + "\n")
        if line.startswith("depth"):
            p.write_text(digits + line + "\n")
        with pytest.raises(SpaceError, match=needle.replace("(", r"\(")):
            load_space(p)
