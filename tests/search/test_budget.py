"""Budgets parse as fractions of the anchor or absolute MACs; anything else is one clear line."""

from __future__ import annotations

import pytest

from slimda_nas.cost.budget import format_fraction, parse_budget, parse_budgets
from slimda_nas.errors import BudgetError


@pytest.mark.parametrize(
    "text,fraction,absolute",
    [
        ("1/64", 1 / 64, None),
        ("0.25", 0.25, None),
        ("25%", 0.25, None),
        ("1", 1.0, None),
        ("64M", None, 64_000_000),
        ("1.2G", None, 1_200_000_000),
        ("500k", None, 500_000),
        (" 1 / 8 ", 1 / 8, None),
    ],
)
def test_good_budgets(text, fraction, absolute):
    b = parse_budget(text)
    assert b.fraction == pytest.approx(fraction) if fraction else b.fraction is None
    assert b.absolute == absolute


def test_budget_to_macs():
    assert parse_budget("1/64").macs(6400) == 100
    assert parse_budget("64M").macs(10**12) == 64_000_000


BAD = {
    "0": "must be above 0",
    "1/0": "division by zero",
    "-1/4": "must be above 0",
    "2": "a fraction above 1",
    "abc": "expected a fraction like 1/64",
    "1e999": "not a finite number",
    "": "expected a fraction",
    "nan": "expected a fraction",
    "inf": "expected a fraction",
    "0%": "must be above 0",
    "150%": "a fraction above 1",
    "0M": "expected at least 1 MAC",
    "1/64/2": "expected a fraction",
    "64 MB": "expected a fraction",
    "1e99999999": "not a finite number",
    "-0.5": "must be above 0",
    "1/-4": "must be above 0",
    "1//4": "expected a fraction",
    "12X": "expected a fraction",
    "0x10": "expected a fraction",
}


@pytest.mark.parametrize("text", sorted(BAD))
def test_bad_budget_is_one_line(text):
    with pytest.raises(BudgetError) as info:
        parse_budget(text)
    assert BAD[text] in str(info.value)
    assert repr(text) in str(info.value) and "\n" not in str(info.value)


def test_several_budgets():
    assert [b.text for b in parse_budgets("1/2,1/4,1/64")] == ["1/2", "1/4", "1/64"]
    with pytest.raises(BudgetError, match="given twice"):
        parse_budgets("1/4,0.25")
    with pytest.raises(BudgetError, match="comma-separated"):
        parse_budgets("1/4,,1/8")


def test_format_fraction():
    assert format_fraction(1 / 64) == "1/64"
    assert format_fraction(0.3) == "1/3.3"
