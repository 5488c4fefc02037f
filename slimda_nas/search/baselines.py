"""Baselines that need no Optuna sampler: the widest uniform width that fits, and AutoSlim-style
greedy slimming guided by UPEM. Their evaluations are recorded as trials of their own study, so
reports treat every searcher alike."""

from __future__ import annotations

import math
from collections.abc import Callable

from optuna.trial import create_trial

from slimda_nas.errors import BudgetError
from slimda_nas.evaluate.evaluator import CandidateScore
from slimda_nas.search.record import TrialRecord, config_key, evaluation_counts, trial_record
from slimda_nas.search.worker import SearchContext, distributions, reference_configs


class Recorder:
    """Scores through the shared cache and adds each configuration once to the study."""

    def __init__(self, ctx: SearchContext) -> None:
        self.study, self.spec, self.space, self.cost = ctx.study, ctx.spec, ctx.space, ctx.cost
        self.score_fn, self.cache, self.on_trial = ctx.score, ctx.cache, ctx.on_trial
        self.dists = distributions(ctx.space)
        trials = ctx.study.get_trials(deepcopy=False)
        self.recorded = {r.key for r in map(trial_record, trials) if r is not None}
        self.evaluations = evaluation_counts(trials)[0]

    def score(self, indices: tuple[int, ...]) -> CandidateScore:
        key = config_key(indices)
        cached = self.cache.get(key)
        config = self.space.from_indices(indices)
        result = cached or self.score_fn(config)
        if cached is None:
            self.cache.put(key, result)
        if key not in self.recorded:
            self.evaluations += 1
            macs = self.cost.macs(config)
            record = TrialRecord(
                config=config,
                key=key,
                macs=macs,
                params=self.cost.params(config),
                sampler=self.spec.sampler,
                upem=result.upem,
                evaluated=True,
                cached=cached is not None,
            )
            trial = create_trial(
                params=dict(zip(self.space.unit_names, indices)),
                distributions=self.dists,
                value=result.value,
                user_attrs=record.to_attrs(),
                constraints={"macs": float(macs - self.spec.budget.macs)},
            )
            self.study.add_trial(trial)
            self.recorded.add(key)
            if self.on_trial:
                self.on_trial(trial)
        return result


def run_uniform(rec: Recorder) -> None:
    """Score the widest uniform-width configuration within the budget."""
    uniform = reference_configs(rec.space, rec.cost, rec.spec.budget.macs).get("uniform")
    if uniform is None:
        raise BudgetError(f"budget {rec.spec.budget}: no uniform-width configuration fits")
    rec.score(rec.space.to_indices(uniform))


def run_greedy(rec: Recorder) -> None:
    """From the largest model, narrow one unit by one step at a time, taking the step that costs
    the least UPEM per MAC saved, until the budget holds (AutoSlim's greedy slimming).

    Once a step's scores would exceed ``spec.evaluations``, the remaining steps follow MACs
    saved alone and only the final configuration is scored.
    """
    space, spec, cost = rec.space, rec.spec, rec.cost
    current = list(space.to_indices(space.largest()))
    current_score = rec.score(tuple(current))
    macs = cost.macs(space.from_indices(current))
    while not spec.budget.fits(macs):
        moves = []
        for i, idx in enumerate(current):
            if idx == 0:
                continue
            nxt = current.copy()
            nxt[i] -= 1
            saved = macs - cost.macs(space.from_indices(nxt))
            if saved > 0:
                moves.append((nxt, saved))
        if not moves:
            break
        unscored = sum(config_key(nxt) not in rec.recorded for nxt, _ in moves)
        # keep one evaluation for the final model; once out of evaluations, MACs alone decide
        # (even where every move happens to be scored already: the current model is not)
        if current_score is not None and rec.evaluations + unscored < spec.evaluations:
            ranked = []
            for nxt, saved in moves:
                s = rec.score(tuple(nxt))
                ranked.append(((s.value - current_score.value) / saved, nxt, s))
            _, current, current_score = min(ranked, key=lambda r: (r[0], -sum(r[1])))
        else:
            current = max(moves, key=lambda m: m[1])[0]
            current_score = None
        macs = cost.macs(space.from_indices(current))
    if current_score is None or math.isinf(current_score.value):
        rec.score(tuple(current))


BASELINES: dict[str, Callable[[Recorder], None]] = {"uniform": run_uniform, "greedy": run_greedy}
"""Searchers that need no Optuna sampler: name -> function of a :class:`Recorder`."""
