"""``run_search``: search each budget with one sampler, resumable and shareable by processes."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import torch

from slimda_nas.errors import BudgetError, RunError, UserError
from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.evaluate.space_summary import check_reachable
from slimda_nas.run import TrainedRun, load_run
from slimda_nas.search import baselines
from slimda_nas.search.budget import Budget
from slimda_nas.search.results import (
    Choice,
    StudySummary,
    best_within,
    complete_trials,
    feasible_fraction,
    pareto_front,
    upem_of,
)
from slimda_nas.search.samplers import BASELINES, OPTUNA_SAMPLERS, SAMPLERS
from slimda_nas.search.score_cache import ScoreCache
from slimda_nas.search.storage import StorageError, describe, open_storage
from slimda_nas.search.worker import StudySpec, StudyWorker, counts, fail_dead_trials

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class SearchOptions:
    budgets: list[Budget]
    sampler: str = "tpe"
    evaluations: int = 100
    seed: int = 0
    storage: str | None = None
    study_name: str | None = None
    workers: int = 1
    multi_objective: bool = False
    settings: EvalSettings = field(default_factory=EvalSettings)

    def check(self) -> None:
        if self.sampler not in SAMPLERS:
            raise UserError(
                f"--sampler: expected one of {', '.join(SAMPLERS)}, got {self.sampler!r}"
            )
        if self.evaluations < 1:
            raise UserError(f"--trials: expected a positive integer, got {self.evaluations}")
        if self.workers < 1:
            raise UserError(f"--workers: expected a positive integer, got {self.workers}")
        if self.multi_objective and self.sampler in BASELINES:
            raise UserError(f"--multi-objective: needs tpe, nsga2 or random, not {self.sampler}")
        if not self.budgets:
            raise UserError("--budget: expected at least one budget")


@dataclass
class SearchResult:
    run_dir: Path
    anchor_macs: int
    studies: list[StudySummary]
    settings: dict
    storage: str
    front: list[dict] = field(default_factory=list)

    @property
    def choices(self) -> list[Choice]:
        return [c for s in self.studies for c in s.choices]


def settings_hash(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:6]


def study_specs(opts: SearchOptions, anchor_macs: int, record: dict) -> list[StudySpec]:
    h = settings_hash(record)
    if opts.multi_objective:
        name = opts.study_name or f"{opts.sampler}-pareto-seed{opts.seed}-{h}"
        return [StudySpec(name, opts.sampler, opts.seed, opts.evaluations)]
    specs = []
    for b in opts.budgets:
        slug = b.text.replace("/", "-").replace("%", "pct").replace(" ", "")
        base = (
            f"{opts.study_name}-{slug}"
            if opts.study_name and len(opts.budgets) > 1
            else opts.study_name
        )
        name = base or f"{opts.sampler}-{slug}-seed{opts.seed}-{h}"
        specs.append(
            StudySpec(name, opts.sampler, opts.seed, opts.evaluations, b, b.macs(anchor_macs))
        )
    return specs


def _open_study(storage, spec: StudySpec, meta: dict) -> optuna.Study:
    directions = ["minimize", "minimize"] if spec.multi_objective else ["minimize"]
    try:
        study = optuna.create_study(
            study_name=spec.name, storage=storage, directions=directions, load_if_exists=True
        )
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        raise StorageError(
            f"study {spec.name}: the storage is damaged ({type(e).__name__}: {e})"
        ) from None
    old = study.user_attrs.get("checkpoint")
    if old is not None and old != meta["checkpoint"]:
        raise RunError(
            f"study {spec.name!r} in this storage was run on another bank (checkpoint {old}); "
            "pass --study-name to start a new one"
        )
    if old is None:
        for k, v in meta.items():
            study.set_user_attr(k, v)
    return study


def _search_one(
    study,
    spec: StudySpec,
    run: TrainedRun,
    evaluator: Evaluator,
    cache: ScoreCache,
    rank: int,
    on_trial=None,
) -> None:
    fail_dead_trials(study)
    if spec.sampler in OPTUNA_SAMPLERS:
        StudyWorker(
            study, spec, run.space, evaluator.cost, evaluator.score, cache, rank, on_trial
        ).run()
    elif rank == 0:
        recorder = baselines.Recorder(
            study, spec, run.space, evaluator.cost, evaluator.score, cache, on_trial
        )
        getattr(baselines, f"run_{spec.sampler}")(recorder)


def run_search(
    run: TrainedRun | str | Path | Evaluator,
    opts: SearchOptions,
    *,
    rank: int = 0,
    on_trial: Callable | None = None,
    on_study: Callable[[StudySpec, int], None] | None = None,
) -> SearchResult:
    """Search every budget of ``opts`` on a run's bank and return the chosen configurations.

    ``run`` is a run folder, a loaded run, or an :class:`Evaluator` already built for it
    (``opts.settings`` is then ignored). Launching the same search again (or in other
    processes, with another ``rank``) joins the same studies: finished trials are kept and
    none is evaluated twice.
    """
    opts.check()
    if isinstance(run, Evaluator):
        evaluator, run = run, run.run
    else:
        run = run if isinstance(run, TrainedRun) else load_run(run)
        evaluator = Evaluator(run, opts.settings)
    record = evaluator.record()
    anchor_macs = evaluator.cost.macs(evaluator.anchor_config)
    smallest = evaluator.cost.macs(run.space.smallest())
    for b in opts.budgets:
        check_reachable(b, smallest, anchor_macs)
    storage = open_storage(opts.storage, run.run_dir, opts.workers)
    cache = ScoreCache(run.run_dir / "cache" / f"scores-{settings_hash(record)}.jsonl")
    specs = study_specs(opts, anchor_macs, record)
    meta = {
        "checkpoint": run.checkpoint_hash,
        "space": run.space.hash,
        "settings": record,
        "anchor_macs": anchor_macs,
        "run": str(run.run_dir),
    }

    procs = _spawn_workers(run, opts) if opts.workers > 1 and rank == 0 else []
    summaries = []
    for spec in specs:
        meta_s = {
            **meta,
            "sampler": spec.sampler,
            "seed": spec.seed,
            "trials": spec.evaluations,
            "budget": spec.budget.text if spec.budget else None,
            "budget_macs": spec.budget_macs,
        }
        study = _open_study(storage, spec, meta_s)
        if on_study:
            on_study(spec, counts(study.get_trials(deepcopy=False))[0])
        t0 = time.time()
        _search_one(study, spec, run, evaluator, cache, rank, on_trial)
        summaries.append(_summarize(study, spec, opts, anchor_macs, time.time() - t0))
    for p in procs:
        p.join()
        if p.exitcode not in (0, None):
            raise UserError(f"search worker {p.name} exited with code {p.exitcode}")
    if procs:  # the other workers may have finished trials after rank 0 summarised
        summaries = [
            _summarize(_open_study(storage, s, meta), s, opts, anchor_macs, sm.seconds)
            for s, sm in zip(specs, summaries)
        ]
    front = []
    if opts.multi_objective:
        study = _open_study(storage, specs[0], meta)
        front = [_trial_record(t, anchor_macs) for t in pareto_front(complete_trials(study))]
    return SearchResult(
        run.run_dir, anchor_macs, summaries, record, describe(opts.storage, run.run_dir), front
    )


def _summarize(
    study, spec: StudySpec, opts: SearchOptions, anchor_macs: int, seconds: float
) -> StudySummary:
    trials = complete_trials(study)
    evaluated, done = counts(trials)
    summary = StudySummary(
        spec.name,
        spec.sampler,
        spec.seed,
        spec.budget.text if spec.budget else None,
        spec.budget_macs,
        done,
        evaluated,
        sum(bool(t.user_attrs.get("duplicate")) for t in trials),
        None if spec.multi_objective else feasible_fraction(study),
        round(seconds, 2),
        spec.evaluations if spec.sampler in OPTUNA_SAMPLERS else None,
    )
    budgets = opts.budgets if spec.multi_objective else [spec.budget]
    for b in budgets:
        limit = b.macs(anchor_macs)
        best = best_within(trials, limit)
        if best is not None:
            summary.choices.append(
                Choice(
                    b.text,
                    limit,
                    best.user_attrs["config"],
                    best.user_attrs["macs"],
                    best.user_attrs["macs"] / anchor_macs,
                    best.user_attrs["params"],
                    best.user_attrs["upem"],
                    best.number,
                    spec.name,
                    spec.sampler,
                )
            )
    return summary


def _trial_record(t, anchor_macs: int) -> dict:
    return {
        "trial": t.number,
        "config": t.user_attrs["config"],
        "macs": t.user_attrs["macs"],
        "fraction": t.user_attrs["macs"] / anchor_macs,
        "upem": t.user_attrs.get("upem"),
        "value": upem_of(t),
    }


# -- several processes on one machine -------------------------------------------------------------
def _spawn_workers(run: TrainedRun, opts: SearchOptions) -> list:
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // opts.workers)
    torch.set_num_threads(threads)
    procs = []
    for r in range(1, opts.workers):
        p = ctx.Process(
            target=_worker_main,
            name=f"rank{r}",
            args=(str(run.run_dir), str(run.device), run.data_root, opts, r, threads),
            daemon=False,
        )
        p.start()
        procs.append(p)
    return procs


def _worker_main(
    run_dir: str, device: str, data_root, opts: SearchOptions, rank: int, threads: int
) -> None:
    torch.set_num_threads(threads)
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        run_search(load_run(run_dir, device=device, data_root=data_root), opts, rank=rank)
    except (UserError, BudgetError) as e:
        print(f"slimda-nas search (worker {rank}): error: {e}", flush=True)
        raise SystemExit(2) from None
