"""Device budgets: a fraction of the anchor's MACs (``1/64``, ``0.25``, ``25%``) or an absolute
count (``64M``, ``1.2G``, ``500K``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from slimda_nas._check import typed
from slimda_nas.errors import BudgetError

_SUFFIX = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_EXPECTED = "expected a fraction like 1/64, 0.25 or 25%, or MACs like 64M or 1.2G"


@dataclass(frozen=True)
class Budget:
    """A MACs budget; ``text`` is how the user wrote it."""

    text: str
    fraction: float | None = None  # of the anchor's MACs
    absolute: int | None = None  # MACs

    def macs(self, anchor_macs: int) -> int:
        """The MACs limit for a bank whose anchor costs ``anchor_macs``."""
        if self.absolute is not None:
            return self.absolute
        return int(math.floor(self.fraction * anchor_macs + 1e-6))

    def resolve(self, anchor_macs: int) -> ResolvedBudget:
        """This budget for a bank whose anchor costs ``anchor_macs`` (done once per search)."""
        return ResolvedBudget(text=self.text, macs=self.macs(anchor_macs), anchor_macs=anchor_macs)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, kw_only=True)
class ResolvedBudget:
    """A budget as a search resolved it: how the user wrote it, its MACs limit, and the anchor's
    MACs it is a fraction of. Everything downstream reads these; nothing parses the text again."""

    text: str
    macs: int
    anchor_macs: int

    @property
    def fraction(self) -> float:
        return self.macs / self.anchor_macs

    @property
    def slug(self) -> str:
        """File- and study-name-safe form of the text (``1/64`` -> ``1-64``)."""
        return slug(self.text)

    def fits(self, macs: int) -> bool:
        """THE feasibility rule of a search: at most the budget's MACs."""
        return macs <= self.macs

    def to_dict(self) -> dict:
        return {"text": self.text, "macs": self.macs, "anchor_macs": self.anchor_macs}

    @classmethod
    def from_dict(cls, raw: dict) -> ResolvedBudget:
        return cls(
            text=str(raw["text"]), macs=int(raw["macs"]), anchor_macs=int(raw["anchor_macs"])
        )

    def __str__(self) -> str:
        return self.text


def slug(text: str) -> str:
    """THE file- and name-safe form of a budget, study or file name, for study names and
    export labels alike: ``1/64`` -> ``1-64``, ``25%`` -> ``25pct``, spaces dropped, any
    other character outside letters, digits and ``-_.+`` -> ``-``."""
    text = text.replace("/", "-").replace("%", "pct").replace(" ", "")
    return "".join(c if c.isalnum() or c in "-_.+" else "-" for c in text).strip("-")


@typed
def parse_budget(text: str) -> Budget:
    """Parse one budget; anything else raises a one-line :class:`BudgetError`."""
    raw = str(text).strip()
    bad = f"budget {text!r}: {_EXPECTED}"
    if not raw:
        raise BudgetError(bad)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KkMmGgTt])", raw)
    if m:
        value = float(m.group(1)) * _SUFFIX[m.group(2).upper()]
        if not math.isfinite(value) or value < 1:
            raise BudgetError(f"budget {text!r}: expected at least 1 MAC")
        return Budget(raw, absolute=int(round(value)))
    value = _number(raw[:-1].strip() if raw.endswith("%") else raw, text)
    if raw.endswith("%"):
        value /= 100
    if not math.isfinite(value):
        raise BudgetError(f"budget {text!r}: not a finite number ({_EXPECTED})")
    if value <= 0:
        raise BudgetError(f"budget {text!r}: must be above 0 ({_EXPECTED})")
    if value > 1:
        raise BudgetError(
            f"budget {text!r}: a fraction above 1 of the largest model; for absolute MACs add a "
            "unit (K, M, G)"
        )
    return Budget(raw, fraction=value)


def _number(raw: str, text: str) -> float:
    m = re.fullmatch(r"([+-]?\d{1,30})\s*/\s*([+-]?\d{1,30})", raw)
    if m:
        num, den = int(m.group(1)), int(m.group(2))
        if den == 0:
            raise BudgetError(f"budget {text!r}: division by zero ({_EXPECTED})")
        if den < 0:
            raise BudgetError(f"budget {text!r}: must be above 0 ({_EXPECTED})")
        return num / den
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", raw):
        raise BudgetError(f"budget {text!r}: {_EXPECTED}")
    return float(raw)


@typed
def parse_budgets(text: str) -> list[Budget]:
    """Comma-separated budgets (``1/2,1/4,1/8``); duplicates are refused."""
    parts = [p for p in str(text).split(",")]
    if not parts or any(not p.strip() for p in parts):
        raise BudgetError(f"budgets {text!r}: expected a comma-separated list like 1/2,1/4,1/64")
    budgets = [parse_budget(p) for p in parts]
    seen = set()
    for b in budgets:
        key = (b.fraction, b.absolute)
        if key in seen:
            raise BudgetError(f"budgets {text!r}: {b.text!r} is given twice")
        seen.add(key)
    return budgets


def format_fraction(value: float) -> str:
    """0.015625 -> '1/64'; 0.3 -> '1/3.3'."""
    if value <= 0:
        return "0"
    inv = 1 / value
    return f"1/{inv:.0f}" if abs(inv - round(inv)) < 0.05 else f"1/{inv:.1f}"


def format_macs(macs: float) -> str:
    """30057216 -> '30.1M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if macs >= scale:
            return f"{macs / scale:.3g}{unit}"
    return str(int(macs))
