"""Per-step metrics as JSON lines, consistent with the checkpoint after a resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slimda_nas._io import write_text

METRICS = "metrics.jsonl"


class MetricsLog:
    """Appends one JSON object per line to ``path``."""

    def __init__(self, path: str | Path, resume_iteration: int = 0) -> None:
        self.path = Path(path)
        if self.path.exists():
            # Lines written after the checkpoint we resume from describe steps that will be redone.
            keep = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip()
                and _iteration(line) is not None
                and _iteration(line) <= resume_iteration
            ]
            write_text(self.path, "".join(line + "\n" for line in keep))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


def _iteration(line: str) -> int | None:
    try:
        return int(json.loads(line)["iteration"])
    except (ValueError, KeyError, TypeError):
        return None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    return out


def adaptation_source(path: str | Path) -> str | None:
    """The adapted.pt a run started from: its log's first record names it (a resume keeps it)."""
    records = read_metrics(path)
    source = records[0].get("adapted_from") if records else None
    return source if isinstance(source, str) else None
