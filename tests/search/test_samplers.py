"""TPE over a bounded history: it reads only the running trials, the last ``recent`` finished ones
and the ``best`` feasible ones, and proposes exactly what it would on a study holding only those."""

from __future__ import annotations

import math
import random

import optuna
import pytest
from optuna.distributions import IntDistribution

from slimda_nas.search._optuna import BoundedStudyView
from slimda_nas.search.samplers import TPE_HISTORY, BoundedHistorySampler

DISTS = {f"u{i}": IntDistribution(0, 7) for i in range(5)}


def _value(params: dict, rng: random.Random) -> float:
    # about a third over the budget (told +inf, as the search does), the rest a noisy bowl
    if sum(params.values()) > 24:
        return math.inf
    return sum((v - 3) ** 2 for v in params.values()) + rng.random()


def _filled(n: int, seed: int = 0) -> optuna.Study:
    rng = random.Random(seed)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(n):
        t = study.ask(DISTS)
        study.tell(t, _value(t.params, rng))
    return study


def test_the_view_keeps_the_recent_the_best_and_the_running():
    study = _filled(60)
    running = study.ask(DISTS)
    view = BoundedStudyView(study, recent=10, best=5)
    kept = view._get_trials(deepcopy=False)
    done = [t for t in study.trials if t.state.is_finished()]
    finite = sorted((t for t in done if t.value < math.inf), key=lambda t: t.value)
    expected = {t.number for t in done[-10:]} | {t.number for t in finite[:5]} | {running.number}
    assert {t.number for t in kept} == expected
    assert [t.number for t in kept] == sorted(expected)  # in the study's order
    # a study within the bound is read whole
    small = _filled(12)
    assert len(BoundedStudyView(small, recent=10, best=5)._get_trials()) == 12


@pytest.mark.parametrize("seed", [0, 1])
def test_bounded_tpe_proposes_what_tpe_proposes_on_the_kept_trials(seed):
    recent, best = 30, 5
    study = _filled(80, seed)
    kept = BoundedStudyView(study, recent, best)._get_trials(deepcopy=False)
    assert len(kept) < len(study.trials)
    only_kept = optuna.create_study()
    only_kept.add_trials(kept)

    def tpe():
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=10, multivariate=True, constant_liar=True
        )

    study.sampler = BoundedHistorySampler(tpe(), DISTS, recent=recent, best=best)
    only_kept.sampler = tpe()
    assert study.ask(DISTS).params == only_kept.ask(DISTS).params


def test_the_shipped_bound_leaves_a_default_search_whole():
    # a default search (100 evaluations) ends within 175-181 trials with repair (BENCHMARKS.md
    # section 9): TPE models all of them
    assert TPE_HISTORY + 25 >= 181
