"""How candidates were scored, as every score, study, results file, ranking and export records
it (:meth:`Evaluator.record`): one typed record, read back with :meth:`ScoringRecord.from_dict`
so that no reader indexes the stored mapping by key. Records of older versions lack fields;
they read as those versions scored (the legacy metric, BN re-estimation on)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slimda_nas.evaluate.scores import LEGACY_METRIC


@dataclass(frozen=True, kw_only=True)
class Subsets:
    """The fixed subsets of unlabelled target train images a score is measured on. BN
    re-estimation averages per batch, so the batch size is part of what a score means."""

    calibration: int | None = None
    scoring: int | None = None
    seed: int | None = None
    split: str | None = None
    batch_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "calibration": self.calibration,
            "scoring": self.scoring,
            "seed": self.seed,
            "split": self.split,
            "batch_size": self.batch_size,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> Subsets:
        raw = raw or {}
        ints = {k: None if raw.get(k) is None else int(raw[k]) for k in _INT_FIELDS}
        split = raw.get("split")
        return cls(**ints, split=None if split is None else str(split))


_INT_FIELDS = ("calibration", "scoring", "seed", "batch_size")


@dataclass(frozen=True, kw_only=True)
class ScoringRecord:
    """The scoring settings of a search, a report or an export, as stored."""

    head: str | None = None
    metric: str = LEGACY_METRIC
    anchor: dict | None = None  # None: the largest configuration
    ensemble_ratios: tuple[float, ...] | None = None
    subsets: Subsets = field(default_factory=Subsets)
    recalibrate_bn: bool = True
    checkpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "metric": self.metric,
            "anchor": self.anchor,
            "ensemble_ratios": None
            if self.ensemble_ratios is None
            else list(self.ensemble_ratios),
            "subsets": self.subsets.to_dict(),
            "recalibrate_bn": self.recalibrate_bn,
            "checkpoint": self.checkpoint,
        }

    @classmethod
    def from_dict(
        cls, raw: Mapping[str, Any] | None, metric: str = LEGACY_METRIC
    ) -> ScoringRecord:
        """Read back :meth:`to_dict` (or an older record: what it holds; ``metric`` where it
        names none)."""
        raw = raw or {}
        ratios = raw.get("ensemble_ratios")
        anchor = raw.get("anchor")
        return cls(
            head=raw.get("head"),
            metric=str(raw.get("metric") or metric),
            anchor=None if anchor is None else dict(anchor),
            ensemble_ratios=None if ratios is None else tuple(float(r) for r in ratios),
            subsets=Subsets.from_dict(raw.get("subsets")),
            recalibrate_bn=bool(raw.get("recalibrate_bn", True)),
            checkpoint=raw.get("checkpoint"),
        )
