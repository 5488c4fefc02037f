"""Studies read back from their storage, and the choices made from their scored points: the
Pareto front, the best point within a budget, the pick per budget and sampler."""

from __future__ import annotations

import json
import math
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from slimda_nas.cost.budget import ResolvedBudget
from slimda_nas.search.record import (
    Pick,
    Point,
    ResultsFile,
    StoredRecordError,
    StudyMeta,
    choose,
    complete_trials,
    same_settings,
    trial_record,
)
from slimda_nas.space import SearchSpace


def pareto_front(points: Iterable[Point]) -> list[Point]:
    """The points no other beats on both MACs and UPEM, by MACs (each configuration once)."""
    front, best, seen = [], math.inf, set()
    for p in sorted(points, key=lambda p: (p.macs, p.value, p.study, p.trial)):
        if p.value < best and p.key not in seen:
            front.append(p)
            best = p.value
            seen.add(p.key)
    return front


def sampler_label(study: StudyRecord) -> str:
    """For display: Pareto (multi-objective) studies are shown apart from single-budget ones."""
    return study.sampler if not study.meta.pareto else f"{study.sampler} (Pareto)"


def picks(studies: Iterable[StudyRecord], budgets: Iterable[ResolvedBudget]) -> list[Pick]:
    """Per budget and sampler, the best pick over that sampler's seeds; the best across
    samplers at each budget is marked ``chosen``."""
    studies = list(studies)
    out = []
    for budget in budgets:
        by_sampler: dict[tuple[str, bool], list[Point]] = defaultdict(list)
        for s in studies:
            if s.meta.budget is not None and s.meta.budget.macs != budget.macs:
                continue
            best = choose(s.points, None if s.meta.budget is not None else budget)
            if best is not None:
                by_sampler[(s.sampler, s.meta.pareto)].append(best)
        here = [
            Pick(
                budget=budget,
                sampler=sampler,
                pareto=pareto,
                point=choose(choices),
                seed_values=[c.value for c in sorted(choices, key=lambda c: c.seed)],
            )
            for (sampler, pareto), choices in sorted(by_sampler.items())
        ]
        chosen = choose(k.point for k in here)
        for k in here:
            k.chosen = k.point is chosen
        out.extend(here)
    return out


# -- a study as read back ---------------------------------------------------------------------------
@dataclass(kw_only=True)
class StudyRecord:
    """A study read back from its storage: metadata, finished trials and scored points."""

    name: str
    meta: StudyMeta
    points: list[Point] = field(default_factory=list)  # in trial order, finite UPEM only
    trials: int = 0  # finished trials, infeasible included
    duplicates: int = 0  # proposals of an already scored configuration of this study
    repairs: int = 0  # trials the search queued to replace a proposal over budget or scored
    feasible_fraction: float | None = None
    seconds: float | None = None  # wall time of the search calls that built it, summed

    @property
    def sampler(self) -> str:
        return self.meta.sampler

    @property
    def seed(self) -> int:
        return self.meta.seed

    @property
    def budget(self) -> ResolvedBudget | None:
        return self.meta.budget

    @property
    def evaluations(self) -> int:
        return sum(p.evaluated for p in self.points)

    @property
    def requested(self) -> int | None:
        return self.meta.requested

    @property
    def short(self) -> bool:
        """Fewer evaluations than requested: the sampler ran out of new feasible proposals."""
        return self.requested is not None and self.evaluations < self.requested

    def picks(self, budgets: Iterable[ResolvedBudget] | None = None) -> list[Pick]:
        """This study's choice at its budget (a Pareto study: at each of ``budgets``)."""
        targets = [self.meta.budget] if self.meta.budget is not None else list(budgets or [])
        out = []
        for b in targets:
            best = choose(self.points, None if self.meta.budget is not None else b)
            if best is not None:
                out.append(
                    Pick(
                        budget=b,
                        sampler=self.sampler,
                        pareto=self.meta.pareto,
                        point=best,
                        seed_values=[best.value],
                    )
                )
        return out

    def results_entry(self, picks: list[Pick], settings: dict) -> dict[str, Any]:
        """This study's entry in ``results.json``."""
        study, m = self, self.meta
        return {
            "name": study.name,
            "sampler": m.sampler,
            "seed": m.seed,
            "budget": None if m.budget is None else m.budget.text,
            "budget_macs": None if m.budget is None else m.budget.macs,
            "trials": study.trials,
            "evaluations": study.evaluations,
            "duplicates": study.duplicates,
            "repairs": study.repairs,
            "feasible_fraction": study.feasible_fraction,
            "seconds": study.seconds,
            "requested": m.requested,
            "choices": [p.to_dict() for p in picks],
            "settings": settings,
        }

    @classmethod
    def read(cls, study: optuna.Study, space: SearchSpace) -> StudyRecord:
        name = str(study.study_name)  # a number in a hand-edited journal is a name too
        meta = StudyMeta.from_attrs(study.user_attrs, name)
        finished = complete_trials(study)
        rec = cls(name=name, meta=meta, trials=len(finished))
        for t in sorted(finished, key=lambda t: t.number):
            point = Point.from_trial(t, name, meta, space)
            if point is not None:
                rec.points.append(point)
        records = [r for r in map(trial_record, finished) if r is not None]
        rec.duplicates = sum(r.duplicate for r in records)
        rec.repairs = sum(r.repaired_from is not None for r in records)
        rec.feasible_fraction = None if meta.pareto else _feasible_fraction(finished, meta)
        return rec


def _feasible_fraction(trials: list[FrozenTrial], meta: StudyMeta) -> float | None:
    """Fraction of the sampler's own proposals within the budget (random search: of its raw
    uniform draws, recorded as ``draws``)."""
    own = []
    for t in trials:
        rec = trial_record(t)
        if rec is not None and (rec.proposer or rec.sampler) == rec.sampler:
            own.append((t, rec))
    if not own:
        return None
    draws = [t.system_attrs.get("draws") for t, _ in own]
    if all(d is not None for d in draws):
        return len(draws) / sum(draws)
    return sum(meta.budget.fits(rec.macs) for _, rec in own) / len(own)


def read_studies(storage: optuna.storages.BaseStorage, space: SearchSpace, where: str):
    """Every study in ``storage``; damage is one :class:`StoredRecordError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
            studies = [
                StudyRecord.read(
                    optuna.load_study(study_name=s.study_name, storage=storage), space
                )
                for s in summaries
            ]
    except StoredRecordError:
        raise
    except Exception as e:  # optuna replays the log: a damaged one fails in many ways
        raise StoredRecordError(
            f"{where}: cannot read the studies ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:160] if str(e) else ''})"
        ) from None
    return sorted(
        studies,
        key=lambda s: (s.sampler, s.seed, -(s.budget.macs if s.budget else math.inf), s.name),
    )


def bank_studies(
    studies: list[StudyRecord], results: ResultsFile | None, checkpoint: str
) -> tuple[dict | None, list[StudyRecord], list[str]]:
    """What a report (and ``export --pareto``) is about: (the primary scoring settings, the
    studies of this bank scored with them, notes on the others)."""
    ours = [s for s in studies if s.meta.checkpoint in (None, checkpoint) and s.meta.settings]
    recorded = results.settings if results is not None else None
    if recorded and any(same_settings(s.meta.settings, recorded) for s in ours):
        settings = recorded
    else:
        counts: dict[str, tuple[int, dict]] = {}
        for s in ours:
            k = json.dumps(s.meta.settings, sort_keys=True)
            counts[k] = (counts.get(k, (0, s.meta.settings))[0] + 1, s.meta.settings)
        settings = max(counts.values(), key=lambda c: c[0])[1] if counts else recorded
    keep, notes = [], []
    for s in studies:
        if s.meta.checkpoint not in (None, checkpoint):
            notes.append(
                f"study {s.name} left out: it searched another bank (checkpoint {s.meta.checkpoint})"
            )
        elif (
            settings is not None
            and s.meta.settings
            and not same_settings(s.meta.settings, settings)
        ):
            notes.append(f"study {s.name} left out: scored with other evaluation settings")
        elif not s.points:
            notes.append(f"study {s.name} left out: no scored configuration yet")
        else:
            keep.append(s)
    return settings, keep, notes
