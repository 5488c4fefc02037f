"""``model.json``: everything a deployment needs about one exported sub-network, as one typed
record (written by ``export_model``, read back by the CLI and by anyone deploying it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from torch import nn

from slimda_nas._versions import versions
from slimda_nas.evaluate.latency import LatencyRecord
from slimda_nas.export.formats import FORMATS
from slimda_nas.export.verify import FileCheck, file_checks, macs_passed

if TYPE_CHECKING:
    from slimda_nas.evaluate.evaluator import Evaluator
    from slimda_nas.export.select import Selection

MODEL_FILE = "model.json"


@dataclass(frozen=True, kw_only=True)
class ExportRecord:
    """One export: the model's interface, its configuration and cost, where it came from, how
    it was scored and verified, and (if measured) its batch-1 latency on the exporting machine.
    The budget is stored as everywhere else: its text and its MACs limit."""

    label: str
    created: str
    files: dict[str, str]  # file name -> format
    input: dict[str, Any]
    output: dict[str, Any]
    classes: list
    config: dict
    channels: dict
    macs: int
    params: int
    anchor_macs: int
    fraction_of_anchor: float
    budget: str | None
    budget_macs: int | None
    upem: dict[str, float]
    upem_search: dict[str, float] | None
    metric: str
    accuracy: float | None
    origin: dict[str, Any]
    run: dict[str, Any]
    settings: dict[str, Any]  # ScoringRecord.to_dict()
    verification: dict[str, Any]  # see export/verify.py
    versions: dict[str, str]
    latency: dict[str, Any] | None = None  # LatencyRecord.to_dict()

    @property
    def upem_value(self) -> float:
        """The exported file's score under the metric the search minimised."""
        return self.upem[self.metric]

    @property
    def macs_passed(self) -> bool:
        return macs_passed(self.verification)

    @property
    def file_checks(self) -> list[FileCheck]:
        return file_checks(self.verification)

    @property
    def latency_record(self) -> LatencyRecord | None:
        return None if not self.latency else LatencyRecord.from_dict(self.latency)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if out["latency"] is None:  # not measured: no key, as before
            del out["latency"]
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ExportRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


def build_record(
    evaluator: Evaluator,
    chosen: Selection,
    config: dict,
    plain: nn.Module,
    upem: dict,
    accuracy: float | None,
    anchor_macs: int,
    verification: dict,
    formats: list[str],
) -> ExportRecord:
    """The record of ``chosen`` as exported in ``formats`` and verified."""
    run, space = evaluator.run, evaluator.run.space
    data = run.data()
    macs = verification["macs"]["thop"]
    searched = chosen.point.upem if chosen.point is not None else {}
    return ExportRecord(
        label=chosen.label,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        files={FORMATS[f].file: f for f in formats},
        input={
            "shape": [1, *space.input_shape],
            "batch": "dynamic (any size >= 1)",
            "dtype": "float32",
            "layout": "NCHW, RGB",
            "normalization": {
                "mean": list(data.mean),
                "std": list(data.std),
                "formula": "(pixel / 255 - mean) / std, per channel",
            },
            "preprocess": _preprocess(data),
        },
        output={"logits": len(run.bank.classes), "head": evaluator.head},
        classes=list(run.bank.classes),
        config=dict(config),
        channels=space.unit_channels(config),
        macs=macs,
        params=verification["macs"]["params"],
        anchor_macs=anchor_macs,
        fraction_of_anchor=macs / anchor_macs,
        budget=chosen.budget.text if chosen.budget else None,
        budget_macs=chosen.budget.macs if chosen.budget else None,
        upem=upem,
        upem_search=searched or None,
        metric=evaluator.settings.metric,
        accuracy=accuracy,
        origin=chosen.origin,
        run={
            "run": str(run.run_dir),
            "task": run.task,
            "method": run.method,
            "checkpoint": run.checkpoint_hash,
            "space": {"name": space.name, "hash": space.hash},
            "backbone": space.backbone,
        },
        settings=evaluator.record(),
        verification=verification,
        versions=versions(),
    )


def _preprocess(data) -> str:
    from slimda_nas.data.transforms import CropTransform, resize_size

    s = data.input_size
    if isinstance(data.target_test.transform, CropTransform):
        return (
            f"resize the shorter side to {resize_size(s)} px (bilinear, antialiased), centre-crop "
            f"{s}x{s}, then normalise"
        )
    return f"{s}x{s} RGB (grey digits replicated to 3 channels, bilinear resize), then normalise"
