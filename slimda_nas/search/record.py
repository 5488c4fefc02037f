"""What a search stores, defined once: the attributes of a study and of a trial in the Optuna
storage, the scored points and picks read back from them, and ``search/results.json``.

Every writer (the search workers, the baselines, ``run_search``) and every reader (reports,
exports, the CLI) goes through the types here; no other module reads or writes these
attributes by name.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from slimda_nas._io import write_json, write_yaml
from slimda_nas.cost.budget import ResolvedBudget
from slimda_nas.errors import Notice, RunError
from slimda_nas.evaluate.scores import LEGACY_METRIC, tiebreak_key
from slimda_nas.evaluate.scoring_record import ScoringRecord
from slimda_nas.space import SearchSpace

RESULTS_FILE = Path("search") / "results.json"
"""Where a run's search results live, relative to the run folder."""


class StoredRecordError(RunError):
    """A stored study, trial or results file that cannot be read as what a search writes."""


def config_key(indices: Iterable[int]) -> str:
    """A configuration's identity: its unit indices joined by commas."""
    return ",".join(str(i) for i in indices)


def same_settings(a: Mapping, b: Mapping) -> bool:
    """Two recorded scoring settings are the same (key order aside)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# -- a study ----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class StudyMeta:
    """A study's user attributes: which bank, how candidates were scored, what was searched.

    ``budget`` is None for a (MACs, UPEM) Pareto study.
    """

    checkpoint: str | None
    space: str | None  # the search space's hash
    settings: dict  # Evaluator.record(): head, metric, anchor, subsets, ...
    anchor_macs: int | None
    run: str | None
    sampler: str
    seed: int
    requested: int | None  # UPEM evaluations asked for ("trials" always means finished trials)
    budget: ResolvedBudget | None

    @property
    def pareto(self) -> bool:
        return self.budget is None

    @property
    def metric(self) -> str:
        return ScoringRecord.from_dict(self.settings).metric

    def to_attrs(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "space": self.space,
            "settings": self.settings,
            "anchor_macs": self.anchor_macs,
            "run": self.run,
            "sampler": self.sampler,
            "seed": self.seed,
            "requested": self.requested,
            "budget": None if self.budget is None else self.budget.text,
            "budget_macs": None if self.budget is None else self.budget.macs,
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], name: str) -> StudyMeta:
        """Read back what :meth:`to_attrs` wrote (studies of older versions: what they have)."""
        try:
            seed = attrs.get("seed")
            if seed is None:  # older studies: the seed is in the name
                m = re.search(r"seed(\d+)", name)
                seed = int(m.group(1)) if m else 0
            anchor = attrs.get("anchor_macs")
            anchor = None if anchor is None else int(anchor)
            budget = None
            if attrs.get("budget_macs") is not None:
                macs = int(attrs["budget_macs"])
                budget = ResolvedBudget(
                    text=str(attrs.get("budget") or macs), macs=macs, anchor_macs=anchor or macs
                )
            settings = attrs.get("settings") or {}
            if not isinstance(settings, dict):
                raise TypeError("settings is not a mapping")
            return cls(
                checkpoint=attrs.get("checkpoint"),
                space=attrs.get("space"),
                settings=settings,
                anchor_macs=anchor,
                run=attrs.get("run"),
                sampler=str(attrs.get("sampler", "?")),
                seed=int(seed),
                requested=_requested(attrs),
                budget=budget,
            )
        except (TypeError, ValueError) as e:
            raise StoredRecordError(f"study {name}: unreadable study attributes ({e})") from None

    @classmethod
    def complete(cls, attrs: Mapping[str, Any], example: StudyMeta) -> bool:
        """Whether ``attrs`` hold every attribute ``example`` writes (studies of older versions
        wrote ``requested`` as ``trials``)."""
        have = set(attrs) | ({"requested"} if "trials" in attrs else set())
        return set(example.to_attrs()) <= have

    def conflict(self, other: StudyMeta) -> str | None:
        """Why a study with this metadata cannot continue as ``other`` (None: it can).

        ``trials`` may differ (a re-run with more trials extends the study); everything that
        defines what is searched and how it is scored must not.
        """
        if self.checkpoint is not None and self.checkpoint != other.checkpoint:
            return (
                f"it searched another bank (checkpoint {self.checkpoint}, now {other.checkpoint})"
            )
        for name, mine, theirs in (
            ("sampler", self.sampler, other.sampler),
            ("seed", self.seed, other.seed),
        ):
            if mine != theirs:
                return f"its {name} is {mine}, this search's {theirs}"
        if (self.budget and self.budget.macs) != (other.budget and other.budget.macs):
            return f"its budget is {_budget_text(self.budget)}, this search's {_budget_text(other.budget)}"
        if self.settings and not same_settings(self.settings, other.settings):
            diff = _first_difference(self.settings, other.settings)
            return f"it was scored with other settings ({diff})"
        return None


def _budget_text(b: ResolvedBudget | None) -> str:
    return "the Pareto front" if b is None else f"{b.text} ({b.macs:,} MACs)"


def _first_difference(a: Mapping, b: Mapping) -> str:
    for key in sorted(set(a) | set(b)):
        if json.dumps(a.get(key), sort_keys=True) != json.dumps(b.get(key), sort_keys=True):
            return f"{key} {a.get(key)!r} there, {b.get(key)!r} now"
    return "same"


# -- a trial ----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TrialRecord:
    """A trial's user attributes: the configuration, its cost, and its score where it has one."""

    config: dict
    key: str
    macs: int
    params: int
    sampler: str
    proposer: str | None = (
        None  # who proposed it: the sampler, random (TPE start-up), repair, reference
    )
    upem: dict[str, float] | None = None
    evaluated: bool = False  # counted as one UPEM evaluation of its study
    cached: bool = False  # its score was computed before (another study, or before a kill)
    duplicate: bool = False  # proposed again in its study: reused, not counted
    overflow: bool = False  # N evaluations already existed or ran elsewhere
    seconds: float | None = None  # time to score it
    # set on a trial the search added to replace a proposal over the budget or already scored:
    # {"trial": its number, "key": its configuration, "why": "over the budget" | "already scored"}
    repaired_from: dict | None = None

    def to_attrs(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        # only what is set: a proposal over the budget has no score, flags default to False
        return {k: v for k, v in out.items() if v is not None and v is not False}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> TrialRecord | None:
        """The record of a trial, or None for one that never got as far as its configuration."""
        if "config" not in attrs or "macs" not in attrs:
            return None
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in attrs.items() if k in names}
        values.setdefault("key", "")
        values.setdefault("params", 0)
        values.setdefault("sampler", "?")
        return cls(**values)

    def write(self, trial: optuna.Trial) -> None:
        """Store this record on a trial that is still running."""
        for k, v in self.to_attrs().items():
            trial.set_user_attr(k, v)


@dataclass(frozen=True)
class QueueMark:
    """What a trial the search queues itself carries from the start: the proposal it replaces
    (``repaired_from``, kept on its :class:`TrialRecord` too) or the name of the reference
    model it is."""

    repaired_from: dict | None = None
    reference: str | None = None

    def to_attrs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    @classmethod
    def of(cls, t: FrozenTrial | optuna.Trial) -> QueueMark:
        attrs = t.user_attrs
        return cls(repaired_from=attrs.get("repaired_from"), reference=attrs.get("reference"))


def trial_record(t: FrozenTrial) -> TrialRecord | None:
    return TrialRecord.from_attrs(t.user_attrs)


def trial_key(t: FrozenTrial) -> str | None:
    """A trial's configuration key, read without building a record (see is_evaluated)."""
    return t.user_attrs.get("key")


def objective(t: FrozenTrial) -> float:
    """A finished trial's UPEM objective (the second value of a (MACs, UPEM) study)."""
    if isinstance(t.values, list) and len(t.values) == 2:
        return t.values[1]
    return t.value if t.value is not None else math.inf


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    return list(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def is_evaluated(t: FrozenTrial) -> bool:
    """The trial spent one of its study's UPEM evaluations (read without building a record:
    the workers ask this of every trial at every step)."""
    return bool(t.user_attrs.get("evaluated"))


def evaluation_counts(trials: Iterable[FrozenTrial]) -> tuple[int, int]:
    """(UPEM evaluations of a study, trials finished): ``--trials`` counts the first."""
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    return sum(is_evaluated(t) for t in done), len(done)


# -- scored points and picks ------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Point:
    """One scored configuration of one study."""

    study: str
    sampler: str
    seed: int
    trial: int
    key: str  # unit indices joined by commas: the configuration's identity
    config: dict
    macs: int
    params: int
    upem: dict[str, float]
    value: float  # the UPEM objective the study minimised
    evaluated: bool  # counted as a UPEM evaluation of its study
    feasible: bool  # within its study's budget (always, in a Pareto study)
    tiebreak: float = 0.0  # the secondary score ordering ties of a discrete objective

    @classmethod
    def from_trial(cls, t: FrozenTrial, name: str, meta: StudyMeta, space: SearchSpace):
        """The point of a finished trial, or None (no score, or a configuration of another
        space)."""
        rec = trial_record(t)
        value = objective(t)
        if rec is None or not rec.upem or not math.isfinite(value):
            return None
        try:
            key = config_key(space.to_indices(rec.config))
        except Exception:  # a configuration of another space: not this bank's
            return None
        return cls(
            study=name,
            sampler=meta.sampler,
            seed=meta.seed,
            trial=t.number,
            key=key,
            config=dict(rec.config),
            macs=int(rec.macs),
            params=int(rec.params),
            upem=dict(rec.upem),
            value=float(value),
            evaluated=rec.evaluated,
            feasible=meta.budget is None or meta.budget.fits(int(rec.macs)),
            tiebreak=tiebreak_key(rec.upem, meta.metric),
        )

    def rank(self, metric: str | None = None) -> tuple:
        """How points are ordered when one is picked: least UPEM; ties (a discrete score like
        disagreement ties often) by its continuous tie-break score, then by MORE MACs (the
        larger model within the budget), then study and trial (deterministic). ``metric``
        ranks by another recorded score than the one the study minimised."""
        value, tiebreak = self.value, self.tiebreak
        if metric is not None:
            value, tiebreak = self.upem.get(metric, math.inf), tiebreak_key(self.upem, metric)
        return (value, tiebreak, -self.macs, self.study, self.trial)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], metric: str = LEGACY_METRIC) -> Point:
        """Read back :meth:`to_dict` (entries of older files: what they hold)."""
        names = {f.name for f in fields(cls)}
        values = {k: raw[k] for k in names if k in raw}
        for name, default in (
            ("study", ""),
            ("sampler", ""),
            ("seed", 0),
            ("key", ""),
            ("params", 0),
            ("evaluated", True),
            ("feasible", True),
        ):
            values.setdefault(name, default)
        if "value" not in values:
            values["value"] = float(raw["upem"][metric])
        values.setdefault("tiebreak", tiebreak_key(raw["upem"], metric))
        values["config"], values["upem"] = dict(values["config"]), dict(values["upem"])
        values["macs"], values["trial"] = int(values["macs"]), int(values["trial"])
        values["study"] = str(values["study"])  # a number in a hand-edited file is its name
        return cls(**values)


def choose(
    points: Iterable[Point], budget: ResolvedBudget | None = None, metric: str | None = None
) -> Point | None:
    """THE chosen model at a budget, for every reader: the first by :meth:`Point.rank` (by
    ``metric`` if given) of the points within ``budget`` (None: each point's own study budget).
    ``results.json`` (a study's pick), the report (a sampler's and the budget's pick) and export
    all choose with it, so they name the same model."""
    ok = [p for p in points if (p.feasible if budget is None else budget.fits(p.macs))]
    return min(ok, key=lambda p: p.rank(metric), default=None)


@dataclass(kw_only=True)
class Pick:
    """The configuration chosen at one budget: by one study (one seed), or by one sampler over
    its seeds (``seed_values`` holds each seed's own choice's UPEM)."""

    budget: ResolvedBudget
    sampler: str  # "tpe", "random", "greedy", ...
    point: Point
    seed_values: list[float] = field(default_factory=list)
    accuracy: float | None = None  # ground truth: measured after the search, never seen by it
    chosen: bool = False  # the best across samplers at this budget
    pareto: bool = False  # made from a (MACs, UPEM) Pareto study, not a single-budget one

    @property
    def label(self) -> str:
        """For display only: ``"tpe"``, or ``"tpe (Pareto)"`` for a pick from a Pareto study."""
        return f"{self.sampler} (Pareto)" if self.pareto else self.sampler

    def to_dict(self) -> dict[str, Any]:
        """The entry of ``results.json`` (flat, as readers index it)."""
        return {
            **self.point.to_dict(),
            "budget": self.budget.text,
            "budget_macs": self.budget.macs,
            "fraction": self.point.macs / self.budget.anchor_macs,
            "sampler": self.sampler,
            "accuracy": self.accuracy,
        }

    @classmethod
    def from_dict(
        cls, raw: Mapping[str, Any], anchor_macs: int, metric: str = LEGACY_METRIC
    ) -> Pick:
        budget = ResolvedBudget(
            text=str(raw["budget"]), macs=int(raw["budget_macs"]), anchor_macs=anchor_macs
        )
        return cls(
            budget=budget,
            sampler=str(raw["sampler"]),
            point=Point.from_dict(raw, metric),
            accuracy=raw.get("accuracy"),
        )


# -- search/results.json ----------------------------------------------------------------------------
@dataclass(kw_only=True)
class ResultsFile:
    """``RUN/search/results.json`` (formerly ``SearchResults``): per study, its statistics and
    its pick(s); the settings the last search scored with; the (MACs, UPEM) front of a
    multi-objective search."""

    run: str
    anchor_macs: int
    settings: dict
    storage: str
    studies: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> study entry
    front: list[Point] = field(default_factory=list)

    def picks(self) -> list[Pick]:
        """Every study's pick(s), as the search recorded them."""
        metric = ScoringRecord.from_dict(self.settings).metric
        return [
            Pick.from_dict(c, self.anchor_macs, _metric(s.get("settings"), metric))
            for s in self.studies.values()
            for c in s.get("choices", [])
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "anchor_macs": self.anchor_macs,
            "settings": self.settings,
            "storage": self.storage,
            "studies": self.studies,
            "front": [_front_entry(p, self.anchor_macs) for p in self.front],
        }

    @classmethod
    def read(cls, run_dir: str | Path) -> ResultsFile | None:
        """The run's results file (None when no search wrote one); damage is one line."""
        path = Path(run_dir) / RESULTS_FILE
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise StoredRecordError(
                f"{path}: damaged results file ({type(e).__name__}); re-run the search"
            ) from None
        if not isinstance(raw, dict):
            raise StoredRecordError(f"{path}: expected a JSON object, got {type(raw).__name__}")
        try:
            out = cls(
                run=str(raw.get("run", run_dir)),
                anchor_macs=int(raw["anchor_macs"]),
                settings=dict(raw.get("settings") or {}),
                storage=str(raw.get("storage", "")),
                studies=dict(raw.get("studies") or {}),
                front=[
                    Point.from_dict(p, _metric(raw.get("settings"), LEGACY_METRIC))
                    for p in raw.get("front") or []
                ],
            )
            out.picks()  # every entry must read back
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise StoredRecordError(
                f"{path}: not a results file of this version ({type(e).__name__}: {e}); re-run "
                "the same `slimda-nas search` command to rewrite it (finished trials are reused)"
            ) from None
        return out

    def merged_into(self, run_dir: str | Path) -> Path:
        """Write these results into ``run_dir``'s file (and ``.yaml``), keeping the entries of
        other studies that are there; atomically."""
        path = Path(run_dir) / RESULTS_FILE
        try:
            old = ResultsFile.read(run_dir) if path.is_file() else None
        except StoredRecordError:  # derived from the journals: keep it aside, write a new one
            stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            backup = path.with_name(f"{path.name}.{stamp}.damaged")
            with contextlib.suppress(FileNotFoundError):  # another search moved it first
                os.replace(path, backup)
            warnings.warn(
                Notice(
                    f"{path}: damaged; kept as {backup.name} and written anew with this "
                    "search's studies (search the other budgets again to add theirs: their "
                    "finished trials are reused)"
                ),
                stacklevel=2,
            )
            old = None
        merged = replace(self, studies={**(old.studies if old else {}), **self.studies})
        if not self.front and old is not None:
            merged.front = old.front
        data = merged.to_dict()
        write_json(path, data)
        write_yaml(path.with_suffix(".yaml"), data)
        return path


def __getattr__(name: str) -> Any:
    """``SearchResults``: the old name of :class:`ResultsFile` (too close to ``SearchResult``,
    what ``run_search`` returns)."""
    if name == "SearchResults":
        import warnings

        warnings.warn(
            "SearchResults is renamed ResultsFile (RUN/search/results.json); the old name goes "
            "in a later version",
            DeprecationWarning,
            stacklevel=2,
        )
        return ResultsFile
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _requested(attrs: Mapping[str, Any]) -> int | None:
    """The evaluations a study asked for; older studies stored them as ``trials``."""
    value = attrs.get("requested", attrs.get("trials"))
    return None if value is None else int(value)


def _metric(settings: Mapping | None, default: str) -> str:
    """The metric of recorded scoring settings; ``default`` where none are recorded."""
    return ScoringRecord.from_dict(settings).metric if settings else default


def _front_entry(p: Point, anchor_macs: int) -> dict[str, Any]:
    return {**p.to_dict(), "fraction": p.macs / anchor_macs}
