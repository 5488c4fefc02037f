"""Fuzzing the parsers users feed by hand: whatever the input, the result is a value or a
one-line user error, never another exception."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimda_nas.cost.budget import parse_budget
from slimda_nas.errors import UserError
from slimda_nas.space import space_from_dict
from slimda_nas.train.config import config_from_dict
from tests.conftest import SPACES

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _one_line(e: Exception) -> None:
    assert isinstance(e, UserError), repr(e)
    assert "\n" not in str(e) and str(e)


@FUZZ
@given(st.text(max_size=30))
def test_budget_parser(text):
    try:
        b = parse_budget(text)
    except UserError as e:
        _one_line(e)
        return
    assert (b.fraction is not None and 0 < b.fraction <= 1) or (
        b.absolute is not None and b.absolute >= 1
    )


GOOD_SPACE = yaml.safe_load((SPACES / "digits_cnn.yaml").read_text())
unit_fields = st.dictionaries(
    st.sampled_from(["layers", "widths", "channels", "divisor", "min_channels", "other"]),
    values,
    max_size=3,
)


@FUZZ
@given(st.dictionaries(st.sampled_from(list(GOOD_SPACE) + ["extra"]), values, max_size=6))
def test_space_loader_random_top_level(raw):
    try:
        space_from_dict(raw, source="fuzz.yaml")
    except UserError as e:
        _one_line(e)
        assert str(e).startswith("fuzz.yaml")


@FUZZ
@given(st.sampled_from(list(GOOD_SPACE["units"])), unit_fields)
def test_space_loader_random_unit(unit, fields):
    raw = {**GOOD_SPACE, "units": {**GOOD_SPACE["units"], unit: fields}}
    try:
        space = space_from_dict(raw, source="fuzz.yaml")
    except UserError as e:
        _one_line(e)
        return
    assert all(c >= 1 for u in space.units for c in u.channel_choices)


@FUZZ
@given(st.text(max_size=200))
def test_space_loader_random_text(text):
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    try:
        space_from_dict(raw, source="fuzz.yaml")
    except UserError as e:
        _one_line(e)


CONFIG_KEYS = [
    "name",
    "task",
    "space",
    "method",
    "iterations",
    "batch_size",
    "models_per_step",
    "sandwich",
    "seed",
    "device",
    "precision",
    "optimizer",
    "distillation",
    "eval_every",
    "weights",
    "other",
]


@FUZZ
@given(st.dictionaries(st.sampled_from(CONFIG_KEYS), values, max_size=8))
def test_run_config_loader(raw):
    raw.setdefault("task", "usps->mnist")
    raw.setdefault("space", "digits_cnn")
    try:
        cfg = config_from_dict(raw, source="fuzz.yaml")
    except UserError as e:
        _one_line(e)
        return
    assert cfg.iterations >= 1 and cfg.batch_size >= 1
