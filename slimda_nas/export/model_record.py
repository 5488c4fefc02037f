"""``model.json``: everything a deployment needs about one exported sub-network, as one typed
record (written by ``export_model``, read back by the CLI and by anyone deploying it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from slimda_nas._io import write_json
from slimda_nas.deploy.latency import LatencyRecord
from slimda_nas.export.formats import ExportError
from slimda_nas.export.verify import FileCheck, file_checks, macs_passed

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
    target_labelled: dict[str, Any] | None = None  # export --target-labelled: accuracy there

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
        for optional in ("latency", "target_labelled"):  # not measured: no key
            if out[optional] is None:
                del out[optional]
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ExportRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})

    def write(self, folder: str | Path) -> None:
        write_json(Path(folder) / MODEL_FILE, self.to_dict())

    @classmethod
    def read(cls, folder: str | Path) -> ExportRecord:
        """``folder``'s record; one line naming the file where it is missing, unreadable or
        incomplete."""
        path = Path(folder) / MODEL_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
        except FileNotFoundError:
            raise ExportError(
                f"{path}: not found (expected a folder written by `slimda-nas export`)"
            ) from None
        except (OSError, ValueError) as e:
            raise ExportError(f"{path}: unreadable ({e})") from None
        try:
            return cls.from_dict(raw)
        except TypeError as e:  # required fields missing
            raise ExportError(
                f"{path}: not a complete export record ({e}); export the model again"
            ) from None
