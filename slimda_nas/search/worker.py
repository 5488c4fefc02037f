"""One search process working on one study: propose, check MACs, score, tell.

MACs are known before any UPEM evaluation, so an infeasible proposal costs nothing but a
constraint entry; a configuration already scored (by any study or process of this run) reuses
its score. ``--trials N`` counts UPEM evaluations: a trial may start one only while fewer than
N evaluations exist or are running among the trials numbered before it, so several processes
on one study stop at exactly N.
"""

from __future__ import annotations

import math
import os
import random
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property

import optuna
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from slimda_nas._io import pid_alive
from slimda_nas.cost.budget import ResolvedBudget
from slimda_nas.cost.feasible import BandSampler, nearest, repair
from slimda_nas.cost.macs import CostModel
from slimda_nas.evaluate.evaluator import CandidateScore
from slimda_nas.search._optuna import (
    batched_writes,
    check_running,
    fail_running_trial,
    set_trial_system_attr,
    tell_running,
    waiting_params,
)
from slimda_nas.search.record import (
    QueueMark,
    TrialRecord,
    config_key,
    is_evaluated,
    trial_key,
)
from slimda_nas.search.samplers import REFERENCES, make_sampler, proposer
from slimda_nas.search.score_cache import ScoreCache
from slimda_nas.space import SearchSpace
from slimda_nas.train.run import TrainedRun
from slimda_nas.train.sandwich import sandwich_floor

STALE_SECONDS = 600  # a RUNNING trial of another machine older than this is a dead worker's
LISTED_BAND = 20_000  # a band this short is listed once when a repair finds nothing near
BAND_DRAWS = 20  # else: band draws tried for a free configuration


@dataclass(frozen=True, kw_only=True)
class StudySpec:
    """What one study searches: a sampler at a budget (or the MACs/UPEM front), N evaluations."""

    name: str
    sampler: str
    seed: int
    evaluations: int
    budget: ResolvedBudget | None = None  # None: multi-objective (MACs, UPEM)
    # replace proposals over the budget or already scored (see _repair), and begin with the
    # bank's reference models (_queue_references); off: the sampler's raw proposals only
    repair: bool = True

    @property
    def multi_objective(self) -> bool:
        return self.budget is None


@dataclass(frozen=True, kw_only=True)
class SearchContext:
    """What a searcher works with: its study and what it searches, the space and its costs,
    the scoring function and its shared cache, this process's rank, a progress callback."""

    study: optuna.Study
    spec: StudySpec
    space: SearchSpace
    cost: CostModel
    score: Callable[[dict], CandidateScore]
    cache: ScoreCache
    rank: int = 0
    on_trial: Callable | None = None
    smallest: dict | None = None  # the sandwich's smallest (default: the space's narrowest)


def distributions(space: SearchSpace) -> dict[str, IntDistribution]:
    """Widths are ordinal: each unit is an index into its ordered choices."""
    return {u.name: IntDistribution(0, len(u.choices) - 1) for u in space.units}


def reference_configs(
    space: SearchSpace, cost: CostModel, budget_macs: int, smallest: dict | None = None
) -> dict[str, dict]:
    """The bank's trained reference models within ``budget_macs``, by name: the widest uniform
    model and the sandwich's smallest (every sandwich step trains it; uniform widths are what a
    progressive shrinking stage opens). ``smallest``: the run's, where its ``smallest_budget``
    puts it above the space's narrowest (``sandwich_smallest``)."""
    out = {}
    ratio = cost.widest_uniform_ratio(budget_macs)
    if ratio is not None:
        out["uniform"] = space.uniform(ratio)
    smallest = smallest or space.smallest()
    if cost.macs(smallest) <= budget_macs and smallest != out.get("uniform"):
        out["smallest"] = smallest
    return out


def sandwich_smallest(run: TrainedRun, cost: CostModel) -> dict:
    """The model every sandwich step of ``run`` trained as its smallest: the space's narrowest,
    or with ``smallest_budget`` the widest uniform model within it. On the Office-31 A->W bank
    with ``smallest_budget: 1/64`` that model scored 63.9% where the uniform model at 1/32
    scored 56.1%, so a search at 1/32 must see it (BENCHMARKS.md section 12)."""
    budget = run.config.smallest_budget
    if budget is None:
        return run.space.smallest()
    return run.space.from_indices(sandwich_floor(run.space, cost, budget))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def fail_dead_trials(study: optuna.Study) -> int:
    """Mark RUNNING trials of dead workers FAIL (a killed search leaves them behind)."""
    host = socket.gethostname()
    failed = 0
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.system_attrs.get("worker", "")
        h, _, pid = owner.partition(":")
        age = now - t.datetime_start.timestamp() if t.datetime_start else math.inf
        # Ownerless: killed between ``ask`` and writing its owner, or asked a moment ago by a
        # live worker, which then meets UpdateFinishedTrialError before scoring and asks again.
        # Failing it at once is cheap either way; a dead one left RUNNING would hold a slot.
        dead = not owner or (
            (h == host and pid.isdecimal() and not pid_alive(int(pid)))
            or (h != host and age > STALE_SECONDS)
        )
        if dead and fail_running_trial(study, t):
            failed += 1
            queued, kept = waiting_params(t), QueueMark.of(t).to_attrs()
            if kept and queued:
                # a queued trial (a replacement, a reference model) lost to a kill: queue it
                # again, so the resumed search goes on exactly as an uninterrupted one (its
                # score, if any, is cached)
                study.enqueue_trial(queued, user_attrs=kept)
    return failed


class _Ledger:
    """What this worker knows of its study's finished trials, kept up to date incrementally
    (a finished trial never changes): how many completed, how many spent an evaluation, and
    the configurations evaluated. Trials are listed in creation order, so once the first
    ``_final`` trials are all finished they are never read again: a step reads only the trials
    from the oldest one still running or waiting."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.evaluated = 0
        self.keys: set[str] = set()
        self._final = 0  # trials[:_final] are all finished
        self._final_evaluated = 0  # UPEM evaluations among them

    @property
    def finished(self) -> int:
        return len(self.seen)

    def update(self, trials: list) -> None:
        for t in self.unfinished(trials):
            if t.state != TrialState.COMPLETE or t.number in self.seen:
                continue
            self.seen.add(t.number)
            if is_evaluated(t):
                self.evaluated += 1
                self.keys.add(trial_key(t))
        while self._final < len(trials) and trials[self._final].state.is_finished():
            t = trials[self._final]
            self._final_evaluated += _evaluated(t)
            self._final += 1

    def unfinished(self, trials: list) -> list:
        """The trials from the oldest one not finished (running or waiting) on."""
        return trials[self._final :]

    def slots_before(self, trials: list, number: int) -> int:
        """Evaluations done or running among the trials numbered before ``number`` (itself
        running, so every trial of the finished prefix is numbered before it)."""
        self.update(trials)
        return self._final_evaluated + sum(
            t.number < number and (t.state == TrialState.RUNNING or _evaluated(t))
            for t in self.unfinished(trials)
        )


def _evaluated(t) -> bool:
    return t.state == TrialState.COMPLETE and is_evaluated(t)


class StudyWorker:
    """Runs the ask / MACs / score / tell loop of one process on one study."""

    def __init__(
        self,
        study: optuna.Study,
        spec: StudySpec,
        space: SearchSpace,
        cost: CostModel,
        score: Callable[[dict], CandidateScore],
        cache: ScoreCache,
        rank: int = 0,
        on_trial: Callable[[optuna.trial.FrozenTrial | None], None] | None = None,
        smallest: dict | None = None,
    ) -> None:
        self.study, self.spec, self.space, self.cost = study, spec, space, cost
        self.score, self.cache, self.rank, self.on_trial = score, cache, rank, on_trial
        self.smallest = smallest
        self.dists = distributions(space)
        self.units = space.unit_names
        self.band = BandSampler(space, cost)
        self.ledger = _Ledger()

    @classmethod
    def of(cls, ctx: SearchContext) -> StudyWorker:
        return cls(
            ctx.study,
            ctx.spec,
            ctx.space,
            ctx.cost,
            ctx.score,
            ctx.cache,
            ctx.rank,
            ctx.on_trial,
            ctx.smallest,
        )

    def run(self, max_proposals: int | None = None) -> None:
        n = self.spec.evaluations
        max_proposals = max_proposals or 20 * n + 100
        proposals = 0
        self._queue_references()
        while proposals < max_proposals:
            trials = self.study.get_trials(deepcopy=False)
            self.ledger.update(trials)
            if self.ledger.evaluated >= n:
                return
            try:
                self.step(trials)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker judged this trial dead and closed it: propose again
            proposals += 1

    def step(self, trials: list | None = None) -> None:
        spec = self.spec
        trials = self.study.get_trials(deepcopy=False) if trials is None else trials
        self.ledger.update(trials)
        seed = self._seed()
        name = proposer(spec.sampler, self.ledger.evaluated, spec.multi_objective)
        try:
            with warnings.catch_warnings(), batched_writes(self.study):
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                budget = None if spec.multi_objective else spec.budget.macs
                self.study.sampler = make_sampler(name, seed, self.dists, self.band, budget)
                trial = self.study.ask(self.dists)
                set_trial_system_attr(self.study, trial, "worker", worker_id())
            self._score_and_tell(trial, name, trials)
        except KeyboardInterrupt:
            # interrupted (Ctrl-C, SIGTERM): abandon the trial of this step now rather than
            # leave it RUNNING for the next run to judge dead; its evaluation is redone then
            self._abandon(since=len(trials))
            raise

    def _score_and_tell(self, trial: optuna.Trial, proposer: str, trials: list) -> None:
        spec = self.spec
        indices = [trial.params[u] for u in self.units]
        # one record per network: widths of blocks the depths skip are normalized away
        network = self.space.normalize_indices(indices)
        config, key = self.space.from_indices(network), config_key(network)
        mark = QueueMark.of(trial)
        repaired_from = mark.repaired_from
        if repaired_from:
            proposer = "repair"
        elif mark.reference:
            proposer = "reference"  # one of the bank's trained reference models
        record = TrialRecord(
            config=config,
            key=key,
            macs=self.cost.macs(config),
            params=self.cost.params(config),
            sampler=spec.sampler,
            proposer=proposer,
            repaired_from=repaired_from,
        )
        if not spec.multi_objective and not spec.budget.fits(record.macs):
            self._tell(trial, record, math.inf)
            self._repair(trial.number, record, indices, trials, "over the budget")
            return
        if key in self.ledger.keys:
            # proposed again in this study: reuse, costs nothing, does not count
            score = self.cache.get(key)
            self._tell(trial, replace(record, upem=score.upem, duplicate=True), score.value)
            self._repair(trial.number, record, indices, trials, "already scored")
            return
        if not self._slot_free(trial.number):
            # N evaluations already exist or run elsewhere
            self._tell(trial, replace(record, overflow=True), None)
            time.sleep(0.2)
            return
        score = self.cache.get(key)  # scored before by another study, or before a kill
        cached = score is not None
        if score is None:
            score = self.score(config)
            self.cache.put(key, score)
        record = replace(
            record, upem=score.upem, seconds=score.seconds, evaluated=True, cached=cached
        )
        self._tell(trial, record, score.value)

    def _queue_references(self) -> None:
        """A new study of a sampler in :data:`REFERENCES` at a budget begins with the bank's
        trained reference models (queued once, by the first process, before any proposal)."""
        spec = self.spec
        if self.rank or not spec.repair or spec.multi_objective or spec.sampler not in REFERENCES:
            return
        if self.study.get_trials(deepcopy=False):
            return  # resumed: its references, if any, were queued when it began
        refs = reference_configs(self.space, self.cost, spec.budget.macs, self.smallest)
        for name, config in refs.items():
            params = dict(zip(self.units, self.space.to_indices(config), strict=True))
            self.study.enqueue_trial(params, user_attrs=QueueMark(reference=name).to_attrs())

    def _repair(self, number: int, record: TrialRecord, indices, trials: list, why: str) -> None:
        """Queue, as the study's next trial, the configuration closest to a proposal that is
        over the budget (shrunk to fit, keeping its shape) or already scored (its nearest
        unscored neighbour), so that every proposal leads to an evaluation. The queued trial
        records the proposal it replaces; a replacement is never replaced again."""
        if not self.spec.repair or record.repaired_from is not None:
            return
        taken = set(self.ledger.keys)
        for t in self.ledger.unfinished(trials):
            queued = waiting_params(t) if t.state == TrialState.WAITING else {}
            if len(queued) == len(self.units):
                taken.add(self._key([queued[u] for u in self.units]))
        budget = None if self.spec.multi_objective else self.spec.budget.macs

        def free(x) -> bool:
            return self._key(x) not in taken and (budget is None or self.band.macs(x) <= budget)

        if why == "over the budget":
            fixed = repair(self.band, indices, budget, keep=free)
        else:
            fixed = nearest(self.band, indices, free)
        if fixed is None and budget is not None:
            fixed = self._free_in_band(free)
        if fixed is None:
            return
        self.study.enqueue_trial(
            dict(zip(self.units, fixed, strict=True)),
            user_attrs=QueueMark(
                repaired_from={"trial": number, "key": record.key, "why": why}
            ).to_attrs(),
        )

    def _key(self, indices) -> str:
        return config_key(self.space.normalize_indices(indices))

    def _free_in_band(self, free: Callable) -> tuple[int, ...] | None:
        """Any free configuration within the budget, for a proposal with none nearby (a
        band nearly exhausted): drawn from the band's list when it is short, else by a few
        band draws."""
        rng = random.Random(self._seed())
        if self._band_list is not None:
            left = [x for x in self._band_list if free(x)]
            return rng.choice(left) if left else None
        for _ in range(BAND_DRAWS):
            x, _ = self.band.sample(rng, self.spec.budget.macs)
            if free(x):
                return x
        return None

    @cached_property
    def _band_list(self) -> list[tuple[int, ...]] | None:
        return self.band.enumerate(self.spec.budget.macs, limit=LISTED_BAND)

    def _seed(self) -> int:
        # The seed depends on how many proposals finished, not on trial numbers: a trial lost to
        # a kill leaves a number behind, and the resumed search must propose what it would have.
        return (self.spec.seed * 1_000_003 + self.rank * 7919 + self.ledger.finished) % 2**31

    def _abandon(self, since: int) -> None:
        """Close as FAIL the RUNNING trials this worker asked for (numbered from ``since``,
        before or after it wrote its name on them)."""
        me = worker_id()
        try:
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if t.system_attrs.get("worker", me if t.number >= since else None) == me:
                    fail_running_trial(self.study, t)
        except Exception:  # the storage itself failed: the next run closes the trial instead
            pass

    def _tell(self, trial, record: TrialRecord, value: float | None) -> None:
        """Record and finish a trial: COMPLETE with its value, or FAIL without one (an
        evaluation it had no slot for), in one journal append."""
        # a trial another worker closed meanwhile (its worker judged dead), before or during
        # this call: the run loop expects UpdateFinishedTrialError
        check_running(self.study, trial)
        with batched_writes(self.study):
            if not self.spec.multi_objective:
                trial.set_constraint("macs", float(record.macs - self.spec.budget.macs))
            record.write(trial)
            if value is None:
                tell_running(self.study, trial, state=TrialState.FAIL)
                return
            values = [float(record.macs), value] if self.spec.multi_objective else value
            frozen = tell_running(self.study, trial, values)
        if self.on_trial:
            self.on_trial(frozen)

    def _slot_free(self, number: int) -> bool:
        trials = self.study.get_trials(deepcopy=False)  # fresh: other workers' trials too
        return self.ledger.slots_before(trials, number) < self.spec.evaluations
