"""Samplers behind Optuna's one interface, registered by name: TPE and NSGA-II as Optuna ships
them, and the random baseline (uniform over the FEASIBLE configurations, by rejection on MACs).
The searchers that need no sampler (uniform width, greedy slimming) are in ``baselines``."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler

from slimda_nas.errors import UserError
from slimda_nas.search._optuna import set_trial_system_attr

Fits = Callable[[dict], bool]


class FeasibleRandomSampler(BaseSampler):
    """Draws whole configurations uniformly and keeps the first whose MACs fit.

    The fraction of draws that fit is recorded on each trial (``draws``), which is the
    feasible fraction of plain random search at this budget.
    """

    def __init__(
        self,
        distributions: Mapping[str, BaseDistribution],
        fits: Fits | None,
        seed: int | None = None,
        max_draws: int = 200_000,
    ) -> None:
        self._distributions = dict(distributions)
        self._fits = fits
        self._rng = random.Random(seed)
        self._max_draws = max_draws

    def infer_relative_search_space(self, study, trial):
        return self._distributions

    def sample_relative(self, study, trial, search_space):
        for draws in range(1, self._max_draws + 1):
            params = {name: self._rng.randint(d.low, d.high) for name, d in search_space.items()}
            if self._fits is None or self._fits(params):
                set_trial_system_attr(study, trial, "draws", draws)
                return params
        raise UserError(f"random search: no configuration fits in {self._max_draws} draws")

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._rng.randint(param_distribution.low, param_distribution.high)


def _tpe(seed: int, distributions, fits: Fits | None) -> BaseSampler:
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=10, multivariate=True, constant_liar=True
    )


def _nsga2(seed: int, distributions, fits: Fits | None) -> BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=16)


def _random(seed: int, distributions, fits: Fits | None) -> BaseSampler:
    return FeasibleRandomSampler(distributions, fits, seed=seed)


OPTUNA_SAMPLERS: dict[
    str, Callable[[int, Mapping[str, BaseDistribution], Fits | None], BaseSampler]
] = {
    "tpe": _tpe,
    "nsga2": _nsga2,
    "random": _random,
}
"""Searchers that are Optuna samplers: name -> factory(seed, distributions, fits)."""


def make_sampler(
    name: str,
    seed: int,
    distributions: Mapping[str, BaseDistribution],
    fits: Fits | None = None,
) -> BaseSampler:
    """A fresh sampler; the search makes one per trial with a seed derived from the trials
    finished so far, so a resumed search proposes exactly what an uninterrupted one would.
    ``fits`` (None for a Pareto search) tells the random sampler which configurations fit."""
    if name not in OPTUNA_SAMPLERS:
        raise UserError(f"--sampler: expected one of {', '.join(OPTUNA_SAMPLERS)}, got {name!r}")
    return OPTUNA_SAMPLERS[name](seed, distributions, fits)
