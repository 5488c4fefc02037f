"""Search-space YAML: shipped files load; malformed files fail with file, unit and field named."""

from __future__ import annotations

import json
import random
import textwrap

import pytest
import yaml

from slimda_nas.errors import ConfigError, SpaceError
from slimda_nas.space import load_config, load_space
from tests.conftest import SPACES

GOOD = """\
backbone: digits_cnn
input: {channels: 3, size: 32}
defaults: {widths: [0.25, 0.5, 1.0], divisor: 1, min_channels: 2}
units:
  conv1: {}
  conv2: {}
  conv3: {}
  conv4: {}
  conv5: {}
  fc1: {}
"""


def _write(tmp_path, text, name="space.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


@pytest.mark.parametrize("path", sorted(SPACES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_spaces_load(path):
    space = load_space(path)
    assert space.units and space.size > 1
    assert len(space.hash) == 16


def test_good_space_and_defaults_inherited(tmp_path):
    space = load_space(_write(tmp_path, GOOD))
    assert space.unit("conv4").choices == (0.25, 0.5, 1.0)
    assert space.unit("conv4").channel_choices == (32, 64, 128)
    assert space.size == 3**6


def test_comments_and_unit_override(tmp_path):
    text = GOOD.replace("conv1: {}", "conv1: {channels: [8, 16, 32]}  # counts, not ratios")
    space = load_space(_write(tmp_path, "# a comment\n" + text))
    assert space.unit("conv1").kind == "channels"
    assert space.unit("conv1").channel_choices == (8, 16, 32)


def test_extends_merges_units(tmp_path):
    _write(tmp_path, GOOD, "base.yaml")
    child = _write(tmp_path, "extends: base.yaml\nunits:\n  fc1: {widths: [1.0]}\n", "child.yaml")
    space = load_space(child)
    assert space.unit("fc1").choices == (1.0,)
    assert space.unit("conv1").choices == (0.25, 0.5, 1.0)


def _replace(old, new):
    assert old in GOOD
    return GOOD.replace(old, new)


BAD = {
    "empty file": ("", "file is empty"),
    "not yaml": ("backbone: [unclosed\n", "invalid YAML"),
    "top-level list": ("- a\n- b\n", "expected a mapping at the top level"),
    "duplicate key": (GOOD + "backbone: digits_cnn\n", "duplicate key 'backbone'"),
    "unknown top field": (GOOD + "unitz: {}\n", "unknown field 'unitz'"),
    "missing backbone": (GOOD.replace("backbone: digits_cnn\n", ""), "field 'backbone': missing"),
    "unknown backbone": (_replace("digits_cnn", "lenet9"), "unknown backbone 'lenet9'"),
    "input not mapping": (_replace("{channels: 3, size: 32}", "32"), "field 'input'"),
    "input size text": (
        _replace("size: 32", "size: big"),
        "field 'input.size': expected a positive integer",
    ),
    "input size zero": (_replace("size: 32", "size: 0"), "field 'input.size'"),
    "input channels negative": (_replace("channels: 3", "channels: -3"), "field 'input.channels'"),
    "input unknown key": (_replace("size: 32}", "size: 32, depth: 3}"), "field 'input.depth'"),
    "no units": (
        GOOD.split("units:")[0] + "units: {}\n",
        "field 'units': expected a non-empty mapping",
    ),
    "unit not mapping": (_replace("conv1: {}", "conv1: 5"), "unit 'conv1': expected a mapping"),
    "unknown unit field": (
        _replace("conv1: {}", "conv1: {width: [1.0]}"),
        "unit 'conv1': unknown field 'width'",
    ),
    "width above one": (
        _replace("conv2: {}", "conv2: {widths: [0.5, 1.5]}"),
        "unit 'conv2': field 'widths': width 1.5 is above 1.0",
    ),
    "width zero": (
        _replace("conv2: {}", "conv2: {widths: [0, 1.0]}"),
        "unit 'conv2': field 'widths': width 0 is not above 0",
    ),
    "width descending": (
        _replace("conv2: {}", "conv2: {widths: [0.5, 0.25]}"),
        "expected ascending ratios in (0, 1], got [0.5, 0.25]",
    ),
    "width text": (
        _replace("conv2: {}", "conv2: {widths: [half, 1.0]}"),
        "unit 'conv2': field 'widths': expected numbers",
    ),
    "widths empty": (
        _replace("conv2: {}", "conv2: {widths: []}"),
        "unit 'conv2': field 'widths': expected a non-empty list",
    ),
    "widths and channels": (
        _replace("conv2: {}", "conv2: {widths: [1.0], channels: [64]}"),
        "unit 'conv2': give widths or channels",
    ),
    "channels above full": (
        _replace("conv2: {}", "conv2: {channels: [32, 80]}"),
        "unit 'conv2': field 'channels': 80 is above the layer's full width 64",
    ),
    "channels not divisible": (
        _replace("conv2: {}", "conv2: {channels: [30, 64], divisor: 8}"),
        "30 is not a multiple of divisor 8",
    ),
    "channels below minimum": (
        _replace("conv2: {}", "conv2: {channels: [4, 64], min_channels: 8}"),
        "4 is below min_channels 8",
    ),
    "divisor zero": (
        _replace("conv2: {}", "conv2: {divisor: 0}"),
        "unit 'conv2': field 'divisor': expected a positive integer",
    ),
    "min channels above full": (
        _replace("conv1: {}", "conv1: {min_channels: 64}"),
        "unit 'conv1': field 'min_channels': 64 is above the full width 32",
    ),
    "rounding collision": (
        _replace("conv1: {}", "conv1: {widths: [0.25, 0.26, 1.0]}"),
        "0.25 and 0.26 both round to 8 channels",
    ),
    "unknown layer": (
        _replace("conv1: {}", "conv1: {layers: [conv9]}"),
        "unit 'conv1': field 'layers': 'conv9' is not a slimmable layer of digits_cnn",
    ),
    "head is not searchable": (
        _replace("conv1: {}", "conv1: {}\n  fc: {}"),
        "unit 'fc': field 'layers': 'fc' is not a slimmable layer",
    ),
    "layer in two units": (
        _replace("fc1: {}", "fc1: {}\n  again: {layers: [fc1]}"),
        "unit 'again': field 'layers': 'fc1' is already in unit 'fc1'",
    ),
    "layer in no unit": (GOOD.replace("  conv5: {}\n", ""), "layer 'conv5' is in no unit"),
    "mixed full widths": (
        _replace("conv1: {}", "conv1: {layers: [conv1, conv2]}").replace("  conv2: {}\n", ""),
        "layers of one unit need the same full width",
    ),
    "layers not list": (
        _replace("conv1: {}", "conv1: {layers: 7}"),
        "unit 'conv1': field 'layers': expected a non-empty list",
    ),
    "defaults unknown": (
        _replace("min_channels: 2}", "min_channels: 2, step: 3}"),
        "field 'defaults.step': unknown",
    ),
    "no choices anywhere": (
        _replace("widths: [0.25, 0.5, 1.0], ", ""),
        "unit 'conv1': no width choices",
    ),
    "extends missing": (
        "extends: nowhere.yaml\n" + GOOD,
        "field 'extends': 'nowhere.yaml' not found",
    ),
    "bool width": (_replace("conv2: {}", "conv2: {widths: [true]}"), "expected numbers"),
    "nan width": (_replace("conv2: {}", "conv2: {widths: [.nan]}"), "width nan is not above 0"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_space_is_rejected_with_location(tmp_path, name):
    text, expected = BAD[name]
    path = _write(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert expected in message, message
    assert "\n" not in message


def test_at_least_twenty_malformed_cases():
    assert len(BAD) >= 20


def test_missing_file():
    with pytest.raises(SpaceError, match="file not found"):
        load_space("does/not/exist.yaml")


def test_extends_cycle(tmp_path):
    _write(tmp_path, "extends: b.yaml\n", "a.yaml")
    _write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(SpaceError, match="cycle"):
        load_space(tmp_path / "a.yaml")


def test_residual_ties_must_share_a_unit():
    # resnet50's stage outputs are added together: splitting them is refused.
    space_text = (
        (SPACES / "resnet50.yaml").read_text() if (SPACES / "resnet50.yaml").exists() else None
    )
    if space_text is None:
        pytest.skip("resnet50 space not shipped")
    raw = yaml.safe_load(space_text)
    unit = next(n for n, u in raw["units"].items() if u and len(u.get("layers", [])) > 1)
    layers = raw["units"][unit]["layers"]
    raw["units"][unit]["layers"] = layers[:1]
    raw["units"]["split_off"] = {"layers": layers[1:]}
    from slimda_nas.space import space_from_dict

    with pytest.raises(SpaceError, match="added to .* need one unit"):
        space_from_dict(raw, source="r50.yaml")


def test_configuration_round_trips_yaml_and_json(tmp_path):
    space = load_space(SPACES / "digits_cnn.yaml")
    for seed in range(5):
        config = space.sample(random.Random(seed))
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "c.json").write_text(json.dumps(config))
        assert load_config(tmp_path / "c.yaml", space) == config
        assert load_config(tmp_path / "c.json", space) == config
        assert space.from_indices(space.to_indices(config)) == config


@pytest.mark.parametrize(
    "config,expected",
    [
        ({"conv1": 0.5}, "unit 'conv2': missing"),
        ({"conv7": 1.0}, "unit 'conv7' is not in space"),
        (
            {**{u: 1.0 for u in ("conv1", "conv2", "conv3", "conv4", "conv5")}, "fc1": 0.3},
            "width 0.3 is not one of",
        ),
        (
            {**{u: 1.0 for u in ("conv1", "conv2", "conv3", "conv4", "conv5")}, "fc1": "wide"},
            "expected a number",
        ),
    ],
)
def test_bad_configuration(config, expected):
    space = load_space(SPACES / "digits_cnn.yaml")
    with pytest.raises(ConfigError, match=expected):
        space.check_config(config, origin="cfg.yaml")


def test_uniform_and_extremes():
    space = load_space(SPACES / "digits_cnn.yaml")
    assert space.uniform(1.0) == space.largest()
    assert space.uniform(0.01) == space.smallest()
    half = space.layer_widths(space.uniform(0.5))
    assert half["conv4"] == 64 and half["fc1"] == 128
