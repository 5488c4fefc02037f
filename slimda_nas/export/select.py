"""Which configuration to export: the chosen model of a budget (``search/results.json``), one
trial of one study, the largest model, a configuration file, or every Pareto-front point."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from slimda_nas.cost.budget import ResolvedBudget, format_macs, parse_budget, slug
from slimda_nas.evaluate.scoring_record import ScoringRecord
from slimda_nas.export.formats import ExportError
from slimda_nas.search.record import (
    RESULTS_FILE,
    Point,
    ResultsFile,
    StudyMeta,
    choose,
    trial_record,
)
from slimda_nas.search.storage import describe, open_run_storage
from slimda_nas.search.studies import bank_studies, pareto_front, read_studies
from slimda_nas.space import SearchSpace


@dataclass(kw_only=True)
class Selection:
    """A configuration to export and where it came from; ``point`` is the search's scored
    point where it came from a search (its MACs and UPEM are checked against the export's)."""

    label: str
    config: dict
    origin: dict
    point: Point | None = None
    settings: dict | None = None  # the scoring settings the search used, where known
    budget: ResolvedBudget | None = None
    checkpoint: str | None = None  # the bank the search scored it on, where known


def by_budget(
    run_dir: Path, text: str, sampler: str | None, metric: str | None = None
) -> Selection:
    """The least-UPEM pick at budget ``text`` over the studies in ``results.json`` (of one
    ``sampler`` if given)."""
    results = ResultsFile.read(run_dir)
    if results is None or not results.studies:
        raise ExportError(
            f"{run_dir / RESULTS_FILE}: no search results; run "
            f"`slimda-nas search --run {run_dir} --budget {text}` first"
        )
    limit = parse_budget(text).macs(results.anchor_macs)
    picks = results.picks()
    here = [k for k in picks if k.budget.macs == limit]
    if not here:
        known = sorted({k.budget.macs: k.budget.text for k in picks}.items(), reverse=True)
        raise ExportError(
            f"--budget {text}: no search result at this budget ({limit:,} MACs) in "
            f"{run_dir / RESULTS_FILE}; searched: {', '.join(t for _, t in known) or 'none'}"
        )
    if sampler:
        mine = [k for k in here if k.sampler == sampler]
        if not mine:
            raise ExportError(
                f"--sampler {sampler}: no {sampler} result at budget {text}; searched with "
                f"{', '.join(sorted({k.sampler for k in here}))}"
            )
        here = mine
    metric = metric or ScoringRecord.from_dict(results.settings).metric
    point = choose((k.point for k in here), here[0].budget, metric)
    best = next(k for k in here if k.point is point)
    entry = results.studies.get(best.point.study, {})
    settings = entry.get("settings") or results.settings
    return Selection(
        label=f"{slug(text)}-{best.sampler}",
        config=dict(best.point.config),
        origin={
            "kind": "budget",
            "budget": text,
            "sampler": best.sampler,
            "study": best.point.study,
            "trial": best.point.trial,
            "rule": "least UPEM within the budget" + ("" if sampler else " over samplers"),
        },
        point=best.point,
        settings=settings,
        budget=best.budget,
        checkpoint=ScoringRecord.from_dict(settings).checkpoint
        if isinstance(settings, dict)
        else None,
    )


def by_trial(
    storage: optuna.storages.BaseStorage,
    study_name: str,
    number: int,
    where: str,
    space: SearchSpace,
) -> Selection:
    """One finished trial of one study."""
    stored = {  # by name as text: a hand-edited journal may hold a number
        str(s.study_name): s.study_name
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    }
    names = list(stored)
    if study_name not in stored:
        raise ExportError(
            f"--study {study_name}: no such study in {where} (studies: "
            f"{', '.join(names[:8]) or 'none'}{'...' if len(names) > 8 else ''})"
        )
    study = optuna.load_study(study_name=stored[study_name], storage=storage)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    t = trials.get(number)
    if t is None:
        raise ExportError(
            f"--trial {number}: study {study_name} has trials 0 to {len(trials) - 1}"
        )
    rec = trial_record(t)
    if t.state != TrialState.COMPLETE or rec is None:
        raise ExportError(
            f"--trial {number}: trial of study {study_name} is {t.state.name}, not a finished "
            "configuration"
        )
    meta = StudyMeta.from_attrs(study.user_attrs, study_name)
    return Selection(
        label=f"{slug(study_name)}-trial{number}",
        config=dict(rec.config),
        origin={"kind": "trial", "study": study_name, "trial": number, "sampler": meta.sampler},
        point=Point.from_trial(t, study_name, meta, space),
        settings=meta.settings,
        budget=meta.budget,
        checkpoint=meta.checkpoint,
    )


def largest(space: SearchSpace) -> Selection:
    return Selection(label="largest", config=space.largest(), origin={"kind": "largest"})


def from_file(path: Path, space: SearchSpace) -> Selection:
    from slimda_nas.space import load_config

    return Selection(
        label=f"config-{slug(Path(path).stem)}",
        config=load_config(path, space),
        origin={"kind": "config-file", "file": str(path)},
    )


def pareto(
    run_dir: Path, space: SearchSpace, checkpoint: str, storage_spec: str | None
) -> list[Selection]:
    """Every configuration on the MACs/UPEM front of the run's studies (as the report draws it)."""
    where = describe(storage_spec, run_dir)
    studies = read_studies(open_run_storage(storage_spec, run_dir), space, where)
    settings, studies, _ = bank_studies(studies, ResultsFile.read(run_dir), checkpoint)
    front = pareto_front(p for s in studies for p in s.points)
    if not front:
        raise ExportError(f"{where}: no scored configuration of this bank; run a search first")
    return [
        Selection(
            label=f"pareto-{i:02d}-{format_macs(p.macs)}",
            config=dict(p.config),
            origin={
                "kind": "pareto",
                "rank": i,
                "of": len(front),
                "study": p.study,
                "trial": p.trial,
                "sampler": p.sampler,
            },
            point=p,
            settings=settings,
            checkpoint=checkpoint,
        )
        for i, p in enumerate(front, start=1)
    ]
