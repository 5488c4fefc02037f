"""Samplers behind Optuna's one interface: TPE and NSGA-II as Optuna ships them, and the
random baseline (uniform over the FEASIBLE configurations, by rejection on MACs)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler

from slimda_nas.errors import UserError

OPTUNA_SAMPLERS = ("tpe", "nsga2", "random")
BASELINES = ("uniform", "greedy")
SAMPLERS = OPTUNA_SAMPLERS + BASELINES


class FeasibleRandomSampler(BaseSampler):
    """Draws whole configurations uniformly and keeps the first whose MACs fit.

    The fraction of draws that fit is recorded on each trial (``draws``), which is the
    feasible fraction of plain random search at this budget.
    """

    def __init__(
        self,
        distributions: Mapping[str, BaseDistribution],
        fits: Callable[[dict], bool] | None,
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
                study._storage.set_trial_system_attr(trial._trial_id, "draws", draws)
                return params
        raise UserError(f"random search: no configuration fits in {self._max_draws} draws")

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._rng.randint(param_distribution.low, param_distribution.high)


def make_sampler(
    name: str,
    seed: int,
    distributions: Mapping[str, BaseDistribution],
    fits: Callable[[dict], bool] | None = None,
    multi_objective: bool = False,
) -> BaseSampler:
    """A fresh sampler; the search makes one per trial with a seed derived from the trial number,
    so a resumed search proposes exactly what an uninterrupted one would."""
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=10,
            multivariate=True,
            constant_liar=True,
        )
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=16)
    if name == "random":
        return FeasibleRandomSampler(distributions, None if multi_objective else fits, seed=seed)
    raise UserError(f"--sampler: expected one of {', '.join(SAMPLERS)}, got {name!r}")
