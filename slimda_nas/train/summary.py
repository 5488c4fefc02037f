"""What a training call returns (:class:`TrainResult`) and ``RUN/train_summary.json``, the
record a finished run leaves (:class:`TrainSummary`): one typed definition for its writer and
its readers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slimda_nas._io import write_json
from slimda_nas.bank import ModelBank

SUMMARY = "train_summary.json"

Accuracy = dict[str, dict[str, float]]  # "largest"/"smallest" -> head -> accuracy


@dataclass(kw_only=True)
class TrainResult:
    run_dir: Path
    checkpoint: Path
    iterations: int
    seconds: float
    resumed_from: int = 0
    adapted_from: Path | None = None  # the run whose adaptation this call started from
    accuracy: Accuracy = field(default_factory=dict)
    bank: ModelBank | None = None


@dataclass(frozen=True, kw_only=True)
class TrainSummary:
    """``RUN/train_summary.json``: written when the last iteration is done."""

    iterations: int
    seconds_this_session: float
    resumed_from: int
    accuracy_on_target_test: Accuracy
    deploy_head: str
    averaged_weights: int
    adapted_from: str | None = None  # the adapted.pt it started from (train --adapted-from)
    note: str = (
        "accuracy after BN re-estimation on target train images; labels used for this log only"
    )

    @classmethod
    def of(
        cls,
        result: TrainResult,
        deploy_head: str,
        averaged_weights: int,
        adapted_from: str | None = None,
    ) -> TrainSummary:
        return cls(
            iterations=result.iterations,
            seconds_this_session=round(result.seconds, 1),
            resumed_from=result.resumed_from,
            accuracy_on_target_test=result.accuracy,
            deploy_head=deploy_head,
            averaged_weights=averaged_weights,
            adapted_from=adapted_from,
        )

    def write(self, run_dir: Path) -> None:
        write_json(run_dir / SUMMARY, asdict(self))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrainSummary:
        accuracy = raw.get("accuracy_on_target_test")
        return cls(
            iterations=int(raw.get("iterations", 0)),
            seconds_this_session=float(raw.get("seconds_this_session", 0.0)),
            resumed_from=int(raw.get("resumed_from", 0)),
            accuracy_on_target_test=accuracy if _is_accuracy(accuracy) else {},
            deploy_head=str(raw.get("deploy_head", "")),
            averaged_weights=int(raw.get("averaged_weights", 0)),
            adapted_from=raw.get("adapted_from")
            if isinstance(raw.get("adapted_from"), str)
            else None,
        )

    @classmethod
    def read(cls, run_dir: Path) -> TrainSummary | None:
        """The run folder's summary; None where it is missing or unreadable (it is a log: the
        checkpoint is what a run is)."""
        try:
            raw = json.loads((run_dir / SUMMARY).read_text(encoding="utf-8"))
            return cls.from_dict(raw) if isinstance(raw, dict) else None
        except (OSError, ValueError, TypeError, OverflowError):  # "iterations": Infinity
            return None


def _is_accuracy(value: object) -> bool:
    """model -> head -> a number (an edited or damaged file may hold anything)."""
    return isinstance(value, dict) and all(
        isinstance(heads, dict)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in heads.values())
        for heads in value.values()
    )
