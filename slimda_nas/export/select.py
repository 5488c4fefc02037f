"""Which configuration to export: the chosen model of a budget (``search/results.json``), one
trial of one study, the largest model, a configuration file, or every Pareto-front point."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from slimda_nas.export.formats import ExportError
from slimda_nas.report.studies import read_results
from slimda_nas.search.budget import parse_budget
from slimda_nas.search.outputs import format_macs
from slimda_nas.space import SearchSpace


@dataclass
class Selection:
    """A configuration plus where it came from; ``macs``/``upem`` are the search's figures."""

    label: str
    config: dict
    origin: dict
    macs: int | None = None
    upem: dict[str, float] | None = None
    settings: dict | None = None  # the scoring settings the search used, where known
    budget: str | None = None
    budget_macs: int | None = None


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text.replace("/", "-")).strip(
        "-"
    )


def by_budget(
    run_dir: Path, text: str, sampler: str | None, metric: str | None = None
) -> Selection:
    """The least-UPEM choice at budget ``text`` over the studies in ``results.json`` (of one
    ``sampler`` if given)."""
    results = read_results(run_dir)
    if not results.get("studies"):
        raise ExportError(
            f"{run_dir / 'search' / 'results.json'}: no search results; run "
            f"`slimda-nas search --run {run_dir} --budget {text}` first"
        )
    budget = parse_budget(text)
    limit = budget.macs(int(results["anchor_macs"]))
    settings = results.get("settings") or {}
    metric = metric or settings.get("metric", "kl")
    choices = [c for s in results["studies"].values() for c in s.get("choices", [])]
    here = [c for c in choices if int(c["budget_macs"]) == limit]
    if not here:
        known = sorted(
            {c["budget"] for c in choices},
            key=lambda b: -parse_budget(b).macs(results["anchor_macs"]),
        )
        raise ExportError(
            f"--budget {text}: no search result at this budget ({limit:,} MACs) in "
            f"{run_dir / 'search' / 'results.json'}; searched: {', '.join(known) or 'none'}"
        )
    if sampler:
        mine = [c for c in here if c["sampler"] == sampler]
        if not mine:
            raise ExportError(
                f"--sampler {sampler}: no {sampler} result at budget {text}; searched with "
                f"{', '.join(sorted({c['sampler'] for c in here}))}"
            )
        here = mine
    best = min(here, key=lambda c: (c["upem"].get(metric, math.inf), c["macs"], c["study"]))
    settings = results["studies"].get(best["study"], {}).get("settings") or settings
    return Selection(
        f"{slug(text)}-{best['sampler']}",
        dict(best["config"]),
        {
            "kind": "budget",
            "budget": text,
            "sampler": best["sampler"],
            "study": best["study"],
            "trial": best["trial"],
            "rule": "least UPEM within the budget" + ("" if sampler else " over samplers"),
        },
        int(best["macs"]),
        dict(best["upem"]),
        settings,
        text,
        limit,
    )


def by_trial(
    storage: optuna.storages.BaseStorage, study_name: str, number: int, where: str
) -> Selection:
    """One finished trial of one study."""
    names = [
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    ]
    if study_name not in names:
        raise ExportError(
            f"--study {study_name}: no such study in {where} (studies: "
            f"{', '.join(names[:8]) or 'none'}{'...' if len(names) > 8 else ''})"
        )
    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    t = trials.get(number)
    if t is None:
        raise ExportError(
            f"--trial {number}: study {study_name} has trials 0 to {len(trials) - 1}"
        )
    if t.state != TrialState.COMPLETE or "config" not in t.user_attrs:
        raise ExportError(
            f"--trial {number}: trial of study {study_name} is {t.state.name}, not a finished "
            "configuration"
        )
    a, attrs = t.user_attrs, study.user_attrs
    return Selection(
        f"{slug(study_name)}-trial{number}",
        dict(a["config"]),
        {"kind": "trial", "study": study_name, "trial": number, "sampler": attrs.get("sampler")},
        a.get("macs"),
        a.get("upem"),
        attrs.get("settings"),
        attrs.get("budget"),
        attrs.get("budget_macs"),
    )


def largest(space: SearchSpace) -> Selection:
    return Selection("largest", space.largest(), {"kind": "largest"})


def from_file(path: Path, space: SearchSpace) -> Selection:
    from slimda_nas.space import load_config

    return Selection(
        f"config-{slug(Path(path).stem)}",
        load_config(path, space),
        {"kind": "config-file", "file": str(path)},
    )


def pareto(
    run_dir: Path, space: SearchSpace, checkpoint: str, storage_spec: str | None
) -> list[Selection]:
    """Every configuration on the MACs/UPEM front of the run's studies (as the report draws it)."""
    from slimda_nas.report.collect import pareto_points
    from slimda_nas.report.studies import bank_studies, load_studies, open_run_storage
    from slimda_nas.search.storage import describe

    where = describe(storage_spec, run_dir)
    studies = load_studies(open_run_storage(storage_spec, run_dir), space, where)
    settings, studies, _ = bank_studies(studies, read_results(run_dir), checkpoint)
    front = pareto_points([p for s in studies for p in s.points])
    if not front:
        raise ExportError(f"{where}: no scored configuration of this bank; run a search first")
    return [
        Selection(
            f"pareto-{i:02d}-{format_macs(p.macs)}",
            dict(p.config),
            {
                "kind": "pareto",
                "rank": i,
                "of": len(front),
                "study": p.study,
                "trial": p.number,
                "sampler": p.sampler,
            },
            p.macs,
            dict(p.upem),
            settings,
        )
        for i, p in enumerate(front, start=1)
    ]
