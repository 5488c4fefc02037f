"""Ground-truth accuracy of chosen configurations, cached per bank and scoring settings in
``RUN/ground_truth.json``. For reports, exports and ranking checks only: the search never
calls it while it searches."""

from __future__ import annotations

import json
import math

from slimda_nas._io import write_json
from slimda_nas.evaluate.evaluator import Evaluator

GROUND_TRUTH = "ground_truth.json"


def has_labels(evaluator: Evaluator) -> bool:
    from slimda_nas.data import LabelAccessError

    try:
        evaluator.run.data().target_test.labels  # noqa: B018
        return True
    except LabelAccessError:
        return False


def ground_truth(evaluator: Evaluator, configs: list[dict]) -> list[float | None]:
    """Target-test accuracy of ``configs`` (None for each where the target has no labels)."""
    if not has_labels(evaluator):
        return [None] * len(configs)
    path = evaluator.run.run_dir / GROUND_TRUTH
    known = _read(path)
    prefix = f"{evaluator.run.checkpoint_hash}:{evaluator.settings_hash()}"
    out, changed = [], False
    for config in configs:
        indices = evaluator.run.space.to_indices(config)
        key = f"{prefix}:{','.join(str(i) for i in indices)}"
        if key not in known:
            known[key] = evaluator.accuracy(config)
            changed = True
        out.append(known[key])
    if changed:
        try:
            write_json(path, known)
        except OSError:
            pass  # read-only run folder: the figures are still printed
    return out


def _read(path) -> dict[str, float]:
    """The cache; a damaged or foreign file is a cache miss (it is rewritten), never an error."""
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {
        k: float(v)
        for k, v in raw.items()
        if isinstance(k, str)
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
        and 0 <= v <= 1
    }
