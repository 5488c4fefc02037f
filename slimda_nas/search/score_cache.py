"""Scores already computed for this bank and these evaluation settings, shared by every study,
budget, sampler and worker process of a run: a duplicate proposal costs nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

from slimda_nas.evaluate.evaluator import CandidateScore


def _parse(line: bytes) -> tuple[str, CandidateScore] | None:
    """(key, score) of one cache line; a damaged or foreign line is a miss, never an error (the
    configuration is simply scored again)."""
    try:
        rec = json.loads(line)
        score = CandidateScore(**rec["score"])
        if not isinstance(rec["key"], str) or not isinstance(score.upem, dict):
            return None
        float(score.value)
        return rec["key"], score
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class ScoreCache:
    """An append-only JSON-lines file (one small line per score, written with O_APPEND so
    concurrent processes never interleave; a line cut by a kill is ignored)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._scores: dict[str, dict] = {}
        self._offset = 0

    def _refresh(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # only whole lines
        for line in data[:end].splitlines():
            score = _parse(line)
            if score is not None:
                self._scores[score[0]] = score[1]
        self._offset += end

    def get(self, key: str) -> CandidateScore | None:
        if key not in self._scores:
            self._refresh()
        return self._scores.get(key)

    def put(self, key: str, score: CandidateScore) -> None:
        self._scores[key] = score
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps({"key": key, "score": score.to_dict()}) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def __len__(self) -> int:
        self._refresh()
        return len(self._scores)
