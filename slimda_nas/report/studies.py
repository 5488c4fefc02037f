"""Read what the searches of a run left behind: every study in its storage, and the settings
they were scored with. The storage is the source of truth (``search/results.json`` only holds
the searches that finished writing it)."""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from slimda_nas.errors import RunError
from slimda_nas.search.results import upem_of
from slimda_nas.search.storage import JOURNAL, StorageError, open_storage
from slimda_nas.space import SearchSpace

RESULTS = Path("search") / "results.json"


@dataclass(frozen=True)
class Point:
    """One scored configuration of one study."""

    study: str
    sampler: str
    seed: int
    number: int
    key: str  # unit indices joined by commas: the configuration's identity
    config: dict
    macs: int
    params: int
    upem: dict[str, float]
    value: float  # the UPEM objective the study minimised
    evaluated: bool  # counted as a UPEM evaluation of this study
    feasible: bool  # within the study's budget (always for a Pareto study)


@dataclass
class Study:
    """A study as the report needs it; ``budget_macs`` is None for a (MACs, UPEM) Pareto study."""

    name: str
    sampler: str
    seed: int
    budget: str | None
    budget_macs: int | None
    checkpoint: str | None
    settings: dict
    anchor_macs: int | None
    points: list[Point] = field(default_factory=list)  # in trial order, finite UPEM only
    trials: int = 0  # finished trials, infeasible included

    @property
    def evaluations(self) -> int:
        return sum(p.evaluated for p in self.points)


def open_run_storage(spec: str | None, run_dir: Path) -> optuna.storages.BaseStorage:
    """The run's study storage for reading; a missing default journal is a one-line error."""
    if spec is None or "://" not in spec:
        path = Path(spec) if spec else run_dir / JOURNAL
        if not path.is_file():
            raise RunError(
                f"{path}: no study journal (run `slimda-nas search --run {run_dir}` first)"
            )
    return open_storage(spec, run_dir)  # checks the journal for damage before Optuna reads it


def load_studies(
    storage: optuna.storages.BaseStorage, space: SearchSpace, where: str
) -> list[Study]:
    """Every study in ``storage`` with its finished trials; damage is one :class:`StorageError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
            studies = [
                _study(optuna.load_study(study_name=s.study_name, storage=storage), space)
                for s in summaries
            ]
    except StorageError:
        raise
    except Exception as e:  # optuna replays the log: a damaged one fails in many ways
        raise StorageError(
            f"{where}: cannot read the studies ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:160] if str(e) else ''})"
        ) from None
    return sorted(studies, key=lambda s: (s.sampler, s.seed, -(s.budget_macs or math.inf), s.name))


def _study(study: optuna.Study, space: SearchSpace) -> Study:
    attrs = study.user_attrs
    seed = attrs.get("seed")
    if seed is None:
        m = re.search(r"seed(\d+)", study.study_name)
        seed = int(m.group(1)) if m else 0
    out = Study(
        study.study_name,
        str(attrs.get("sampler", "?")),
        int(seed),
        attrs.get("budget"),
        attrs.get("budget_macs"),
        attrs.get("checkpoint"),
        attrs.get("settings") or {},
        attrs.get("anchor_macs"),
    )
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    out.trials = len(finished)
    for t in sorted(finished, key=lambda t: t.number):
        point = _point(t, out, space)
        if point is not None:
            out.points.append(point)
    return out


def _point(t: FrozenTrial, study: Study, space: SearchSpace) -> Point | None:
    a = t.user_attrs
    value = upem_of(t)
    if "config" not in a or "macs" not in a or not math.isfinite(value) or not a.get("upem"):
        return None
    try:
        key = ",".join(str(i) for i in space.to_indices(a["config"]))
    except Exception:  # a configuration of another space: not this bank's
        return None
    constraints = t.system_attrs.get("constraints:macs")
    feasible = study.budget_macs is None or (
        a["macs"] <= study.budget_macs if constraints is None else float(constraints) <= 0
    )
    return Point(
        study.name,
        study.sampler,
        study.seed,
        t.number,
        key,
        dict(a["config"]),
        int(a["macs"]),
        int(a.get("params", 0)),
        dict(a["upem"]),
        float(value),
        bool(a.get("evaluated")),
        feasible,
    )


def read_results(run_dir: Path) -> dict:
    """``search/results.json`` (empty when no search wrote one); damage is a one-line error."""
    path = run_dir / RESULTS
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise RunError(
            f"{path}: damaged results file ({type(e).__name__}); re-run the search"
        ) from None
    if not isinstance(data, dict):
        raise RunError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def bank_studies(
    studies: list[Study], results: dict, checkpoint: str
) -> tuple[dict | None, list[Study], list[str]]:
    """What a report (and ``export --pareto``) is about: (the primary settings, the studies of
    this bank scored with them, notes on the others)."""
    settings = primary_settings(studies, results, checkpoint)
    return (settings, *split_studies(studies, settings, checkpoint))


def primary_settings(studies: list[Study], results: dict, checkpoint: str) -> dict | None:
    """The scoring settings the report is about: those of ``results.json`` when a study of this
    bank used them, else the ones most studies of this bank used."""
    ours = [s for s in studies if s.checkpoint in (None, checkpoint) and s.settings]
    recorded = results.get("settings")
    if recorded and any(same_settings(s.settings, recorded) for s in ours):
        return recorded
    counts: dict[str, tuple[int, dict]] = {}
    for s in ours:
        k = json.dumps(s.settings, sort_keys=True)
        counts[k] = (counts.get(k, (0, s.settings))[0] + 1, s.settings)
    return max(counts.values(), key=lambda c: c[0])[1] if counts else recorded


def same_settings(a: Mapping, b: Mapping) -> bool:
    """Two recorded scoring settings are the same (key order aside)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def split_studies(
    studies: list[Study], settings: dict | None, checkpoint: str
) -> tuple[list[Study], list[str]]:
    """(studies of this bank and these settings, notes on the others)."""
    keep, notes = [], []
    for s in studies:
        if s.checkpoint not in (None, checkpoint):
            notes.append(
                f"study {s.name} left out: it searched another bank (checkpoint {s.checkpoint})"
            )
        elif settings is not None and s.settings and not same_settings(s.settings, settings):
            notes.append(f"study {s.name} left out: scored with other evaluation settings")
        elif not s.points:
            notes.append(f"study {s.name} left out: no scored configuration yet")
        else:
            keep.append(s)
    return keep, notes
