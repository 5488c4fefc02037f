"""``run_search``: search each budget with one sampler, resumable and shareable by processes,
and save what it found in ``RUN/search/results.json``."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import optuna
import torch

from slimda_nas._check import check_fields, typed
from slimda_nas.cost.budget import Budget, ResolvedBudget, parse_budgets
from slimda_nas.cost.feasible import BandSampler
from slimda_nas.cost.space_summary import check_reachable
from slimda_nas.errors import BudgetError, Notice, RunError, UserError, check_int
from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.evaluate.ground_truth import ground_truth
from slimda_nas.evaluate.scoring_record import ScoringRecord
from slimda_nas.search import baselines
from slimda_nas.search._lifeline import die_with_parent
from slimda_nas.search.record import Pick, Point, ResultsFile, StudyMeta, evaluation_counts
from slimda_nas.search.samplers import OPTUNA_SAMPLERS
from slimda_nas.search.score_cache import ScoreCache
from slimda_nas.search.searchers import SEARCHERS, SearchContext
from slimda_nas.search.storage import StorageError, describe, open_storage
from slimda_nas.search.studies import StudyRecord, pareto_front
from slimda_nas.search.worker import StudySpec, fail_dead_trials, sandwich_smallest
from slimda_nas.train.run import TrainedRun, load_run

SAMPLERS = tuple(SEARCHERS)
"""Every searcher ``--sampler`` accepts: Optuna samplers, then the baselines."""


@dataclass(kw_only=True)
class SearchOptions:
    """What to search. ``budgets`` may be given as text (``"1/2,1/4"``)."""

    budgets: list[Budget] | str
    sampler: str = "tpe"
    evaluations: int = 100
    seed: int = 0
    storage: str | None = None
    study_name: str | None = None
    workers: int = 1
    multi_objective: bool = False
    # replace proposals over the budget or already scored by the closest free one, and begin
    # TPE and NSGA-II at a budget with the bank's trained reference models that fit
    repair: bool = True
    settings: EvalSettings = field(default_factory=EvalSettings)

    def __post_init__(self) -> None:
        check_fields(self)  # SearchOptions(study_name=5) broke report and export afterwards
        if isinstance(self.budgets, str):
            self.budgets = parse_budgets(self.budgets)

    def check(self) -> None:
        if self.sampler not in SAMPLERS:
            raise UserError(
                f"--sampler: expected one of {', '.join(SAMPLERS)}, got {self.sampler!r}"
            )
        check_int("--trials", self.evaluations, 1, 10**6)
        check_int("--workers", self.workers, 1, 1024)
        check_int("--seed", self.seed, 0, 2**32 - 1)
        if self.study_name is not None and (
            not self.study_name.strip() or "\0" in self.study_name
        ):
            raise UserError(
                f"--study-name: expected a non-empty name without NUL, got {self.study_name!r}"
            )
        if self.multi_objective and self.sampler in baselines.BASELINES:
            raise UserError(f"--multi-objective: needs tpe, nsga2 or random, not {self.sampler}")
        if not self.budgets:
            raise UserError("--budget: expected at least one budget")


@dataclass(kw_only=True)
class SearchResult:
    """What ``run_search`` found: per study its record and pick(s), and the front of a
    multi-objective search."""

    run_dir: Path
    anchor_macs: int
    studies: list[StudyRecord]
    picks: list[Pick]
    settings: dict
    storage: str
    front: list[Point] = field(default_factory=list)
    results_file: Path | None = None

    @property
    def metric(self) -> str:
        return ScoringRecord.from_dict(self.settings).metric

    def to_results(self) -> ResultsFile:
        return ResultsFile(
            run=str(self.run_dir),
            anchor_macs=self.anchor_macs,
            settings=self.settings,
            storage=self.storage,
            studies={
                s.name: s.results_entry(
                    [k for k in self.picks if k.point.study == s.name], self.settings
                )
                for s in self.studies
            },
            front=self.front,
        )


def study_specs(
    opts: SearchOptions, budgets: list[ResolvedBudget], settings_hash: str
) -> list[StudySpec]:
    common = dict(
        sampler=opts.sampler, seed=opts.seed, evaluations=opts.evaluations, repair=opts.repair
    )
    if opts.multi_objective:
        name = opts.study_name or f"{opts.sampler}-pareto-seed{opts.seed}-{settings_hash}"
        return [StudySpec(name=name, **common)]
    specs = []
    for b in budgets:
        base = (
            f"{opts.study_name}-{b.slug}"
            if opts.study_name and len(budgets) > 1
            else opts.study_name
        )
        name = base or f"{opts.sampler}-{b.slug}-seed{opts.seed}-{settings_hash}"
        specs.append(StudySpec(name=name, budget=b, **common))
    return specs


def _held_by_band(spec: StudySpec, band: BandSampler) -> StudySpec:
    """A budget that holds fewer configurations than the evaluations asked is searched
    exhaustively: all of them are evaluated, and the search says so. (The baselines follow
    their own path and are left as they are.)"""
    if spec.multi_objective or spec.sampler not in OPTUNA_SAMPLERS:
        return spec
    held = band.enumerate(spec.budget.macs, limit=spec.evaluations)
    if held is None or len(held) >= spec.evaluations:
        return spec
    fit = "1 configuration fits" if len(held) == 1 else f"{len(held):,} configurations fit"
    warnings.warn(
        Notice(
            f"budget {spec.budget.text}: only {fit} {spec.budget.macs:,} MACs, fewer than the "
            f"{spec.evaluations:,} evaluations asked; {spec.sampler} evaluates "
            f"{'it' if len(held) == 1 else f'all {len(held):,}'}"
        ),
        stacklevel=4,  # run_search, through _specs
    )
    return replace(spec, evaluations=len(held))


def _open_study(storage, spec: StudySpec, meta: StudyMeta) -> optuna.Study:
    """Create the study, or join it when it searches the same thing the same way; a study of
    that name made by another search is refused (its results would be overwritten)."""
    directions = ["minimize", "minimize"] if spec.multi_objective else ["minimize"]
    try:
        study = optuna.create_study(
            study_name=spec.name, storage=storage, directions=directions, load_if_exists=True
        )
    except ValueError as e:
        if "direction" in str(e).lower():  # a Pareto study joined as a single-budget one
            raise RunError(
                f"study {spec.name!r}: it was made by another search (its objectives differ "
                "from this one's); choose another --study-name"
            ) from None
        raise StorageError(
            f"study {spec.name}: the storage is damaged ({type(e).__name__}: {e})"
        ) from None
    except (KeyError, UnicodeDecodeError) as e:
        raise StorageError(
            f"study {spec.name}: the storage is damaged ({type(e).__name__}: {e})"
        ) from None
    attrs = _complete_attrs(study, meta)
    if attrs is None:
        for k, v in meta.to_attrs().items():
            study.set_user_attr(k, v)
        return study
    reason = StudyMeta.from_attrs(attrs, spec.name).conflict(meta)
    if reason is not None:
        raise RunError(
            f"study {spec.name!r} already exists and {reason}; choose another --study-name "
            "(or leave it out for a name of its own)"
        )
    return study


def _complete_attrs(study: optuna.Study, meta: StudyMeta, wait_s: float = 10.0) -> dict | None:
    """The study's metadata once its writer has finished writing it (workers started together
    all find the study a moment after one of them created it); None for a study without any,
    or whose writer died half-way (the caller writes it)."""
    deadline = time.time() + wait_s
    while True:
        attrs = study.user_attrs
        if not attrs or StudyMeta.complete(attrs, meta):
            return attrs or None
        if time.time() > deadline:
            return None
        time.sleep(0.1)


def _search_one(study, spec: StudySpec, run: TrainedRun, evaluator, cache, rank, on_trial):
    fail_dead_trials(study)
    ctx = SearchContext(
        study=study,
        spec=spec,
        space=run.space,
        cost=evaluator.cost,
        score=evaluator.score,
        cache=cache,
        rank=rank,
        on_trial=on_trial,
        smallest=sandwich_smallest(run, evaluator.cost),
    )
    SEARCHERS[spec.sampler].search(ctx)


@typed
def run_search(
    run: TrainedRun | str | Path | Evaluator,
    opts: SearchOptions,
    *,
    rank: int = 0,
    save: bool = True,
    accuracy: bool = True,
    on_trial: Callable | None = None,
    on_study: Callable[[StudySpec, int], None] | None = None,
) -> SearchResult:
    """Search every budget of ``opts`` on a run's bank and return the chosen configurations.

    ``run`` is a run folder, a loaded run, or an :class:`Evaluator` already built for it
    (``opts.settings`` is then ignored). Launching the same search again (or in other
    processes, with another ``rank``) joins the same studies: finished trials are kept and
    none is evaluated twice. Afterwards the picks get their ground-truth accuracy where the
    target has labels (``accuracy``; the search itself never sees it) and the results are
    merged into ``RUN/search/results.json`` (``save``), which ``export --budget`` reads.
    """
    opts.check()
    opts = _capped_workers(opts)
    evaluator = run if isinstance(run, Evaluator) else Evaluator(load_run(run), opts.settings)
    run = evaluator.run
    budgets = _resolved_budgets(evaluator, opts.budgets)
    specs = _specs(opts, budgets, evaluator)
    meta = _study_meta(evaluator)
    with _optuna_quiet():
        storage = open_storage(opts.storage, run.run_dir, opts.workers)
        seconds = _run_studies(storage, specs, meta, evaluator, opts, rank, on_trial, on_study)
        # read back after every worker finished: the others may have added trials meanwhile
        studies = []
        for spec in specs:
            study = StudyRecord.read(_open_study(storage, spec, meta(spec)), run.space)
            study.seconds = seconds[spec.name]
            studies.append(study)
    result = SearchResult(
        run_dir=run.run_dir,
        anchor_macs=evaluator.anchor_macs,
        studies=studies,
        picks=[k for s in studies for k in s.picks(budgets)],
        settings=evaluator.record(),
        storage=describe(opts.storage, run.run_dir),
        front=pareto_front(studies[0].points) if opts.multi_objective else [],
    )
    if accuracy:
        for pick, acc in zip(
            result.picks, ground_truth(evaluator, [k.point.config for k in result.picks])
        ):
            pick.accuracy = acc
    if save:
        result.results_file = result.to_results().merged_into(run.run_dir)
    return result


@contextmanager
def _optuna_quiet() -> Iterator[None]:
    """Optuna's INFO lines (one per trial) off while a search runs, as they were afterwards:
    importing the package changes no logging."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def _resolved_budgets(evaluator: Evaluator, given: list[Budget]) -> list[ResolvedBudget]:
    """Each budget against the anchor's MACs, once; a budget below the smallest model is an
    error naming both."""
    smallest = evaluator.cost.macs(evaluator.run.space.smallest())
    for b in given:
        check_reachable(b, smallest, evaluator.anchor_macs)
    return [b.resolve(evaluator.anchor_macs) for b in given]


def _specs(
    opts: SearchOptions, budgets: list[ResolvedBudget], evaluator: Evaluator
) -> list[StudySpec]:
    """One study per budget (one for a Pareto search), exhaustive where a budget holds fewer
    configurations than the evaluations asked."""
    band = BandSampler(evaluator.run.space, evaluator.cost)
    return [_held_by_band(s, band) for s in study_specs(opts, budgets, evaluator.settings_hash())]


def _study_meta(evaluator: Evaluator) -> Callable[[StudySpec], StudyMeta]:
    """What every study of this search records about the bank and the scoring."""
    run, record = evaluator.run, evaluator.record()

    def meta(spec: StudySpec) -> StudyMeta:
        return StudyMeta(
            checkpoint=run.checkpoint_hash,
            space=run.space.hash,
            settings=record,
            anchor_macs=evaluator.anchor_macs,
            run=str(run.run_dir),
            sampler=spec.sampler,
            seed=spec.seed,
            requested=spec.evaluations,
            budget=spec.budget,
        )

    return meta


def _run_studies(
    storage, specs, meta, evaluator: Evaluator, opts: SearchOptions, rank, on_trial, on_study
) -> dict[str, float]:
    """Search every study here (and in the workers this process spawns); seconds per study."""
    run = evaluator.run
    cache = ScoreCache(run.run_dir / "cache" / f"scores-{evaluator.settings_hash()}.jsonl")
    procs = _spawn_workers(run, opts) if opts.workers > 1 and rank == 0 else []
    seconds = {}
    try:
        for spec in specs:
            study = _open_study(storage, spec, meta(spec))
            if on_study:
                on_study(spec, evaluation_counts(study.get_trials(deepcopy=False))[0])
            earlier = _earlier_seconds(run.run_dir, spec.name, study) if rank == 0 else 0.0
            t0 = time.time()
            _search_one(study, spec, run, evaluator, cache, rank, on_trial)
            seconds[spec.name] = round(earlier + time.time() - t0, 2)
        for p in procs:
            p.join()
            if p.exitcode not in (0, None):
                raise UserError(f"search worker {p.name} exited with code {p.exitcode}")
    except BaseException:
        for p in procs:  # interrupted or failed: the other workers stop too, cleanly
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=60)
        raise
    return seconds


def _earlier_seconds(run_dir: Path, name: str, study: optuna.Study) -> float:
    """The search time ``results.json`` records for the study this call continues (a re-run
    of a finished search adds its own few seconds instead of resetting the total)."""
    try:
        results = ResultsFile.read(run_dir)
    except UserError:
        return 0.0
    entry = results.studies.get(name) if results else None
    if not isinstance(entry, dict):
        return 0.0
    done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    value, trials = entry.get("seconds"), entry.get("trials")
    if not isinstance(value, (int, float)) or not isinstance(trials, int) or trials > done:
        return 0.0  # another study of that name since (its journal was replaced)
    return float(value)


# -- several processes on one machine -------------------------------------------------------------
def _capped_workers(opts: SearchOptions) -> SearchOptions:
    """At most one worker per core and per evaluation: more only compete for both."""
    cores = os.cpu_count() or 1
    limit = max(1, min(cores, opts.evaluations))
    if opts.workers <= limit:
        return opts
    warnings.warn(
        Notice(
            f"--workers {opts.workers}: using {limit} ({cores} cores, {opts.evaluations} "
            "evaluations per budget; more processes would only compete for them)"
        ),
        stacklevel=3,
    )
    return replace(opts, workers=limit)


def _spawn_workers(run: TrainedRun, opts: SearchOptions) -> list:
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // opts.workers)
    torch.set_num_threads(threads)
    procs = []
    for r in range(1, opts.workers):
        p = ctx.Process(
            target=_worker_main,
            name=f"rank{r}",
            args=(str(run.run_dir), str(run.device), run.data_root, opts, r, threads, os.getpid()),
            daemon=False,
        )
        p.start()
        procs.append(p)
    return procs


def _worker_main(
    run_dir: str,
    device: str,
    data_root,
    opts: SearchOptions,
    rank: int,
    threads: int,
    parent_pid: int,
) -> None:
    torch.set_num_threads(threads)
    warnings.simplefilter("ignore")
    signal.signal(signal.SIGTERM, _raise_interrupt)  # the parent stops its workers this way
    die_with_parent(parent_pid)  # ... and a parent killed outright stops them the same way
    try:
        run = load_run(run_dir, device=device, data_root=data_root)
        run_search(run, opts, rank=rank, save=False, accuracy=False)
    except (UserError, BudgetError) as e:
        print(f"slimda-nas search (worker {rank}): error: {e}", flush=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(143) from None


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
