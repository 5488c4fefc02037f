"""Samplers behind Optuna's one interface, registered by name: TPE and NSGA-II as Optuna ships
them, and the random baseline (uniform over the FEASIBLE configurations). The searchers that
need no sampler (uniform width, greedy slimming) are in ``baselines``."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler

from slimda_nas.errors import UserError
from slimda_nas.evaluate.feasible import BandSampler
from slimda_nas.search._optuna import set_trial_system_attr


class FeasibleRandomSampler(BaseSampler):
    """Draws whole configurations uniformly among those within the budget (all of them in a
    Pareto search): by rejection while that finds one, else by a random walk over the feasible
    set (see :class:`~slimda_nas.evaluate.feasible.BandSampler`).

    The uniform draws a configuration took are recorded on its trial (``draws``): their
    fraction that fit is plain random search's feasible fraction at this budget (an upper bound
    where the walk was needed: ``chain`` is then set).
    """

    def __init__(
        self,
        distributions: Mapping[str, BaseDistribution],
        band: BandSampler,
        budget_macs: int | None,
        seed: int | None = None,
    ) -> None:
        self._distributions = dict(distributions)
        self._band, self._budget = band, budget_macs
        self._rng = random.Random(seed)

    def infer_relative_search_space(self, study, trial):
        return self._distributions

    def sample_relative(self, study, trial, search_space):
        if self._budget is None:
            return {n: self._rng.randint(d.low, d.high) for n, d in search_space.items()}
        indices, draws = self._band.sample(self._rng, self._budget)
        set_trial_system_attr(study, trial, "draws", draws or self._band.rejection_draws)
        if draws is None:
            set_trial_system_attr(study, trial, "chain", True)
        return dict(zip(self._distributions, indices, strict=True))

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._rng.randint(param_distribution.low, param_distribution.high)


Factory = Callable[[int, Mapping[str, BaseDistribution], BandSampler, "int | None"], BaseSampler]


def _tpe(seed, distributions, band, budget_macs) -> BaseSampler:
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=10, multivariate=True, constant_liar=True
    )


def _nsga2(seed, distributions, band, budget_macs) -> BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=16)


def _random(seed, distributions, band, budget_macs) -> BaseSampler:
    return FeasibleRandomSampler(distributions, band, budget_macs, seed=seed)


OPTUNA_SAMPLERS: dict[str, Factory] = {"tpe": _tpe, "nsga2": _nsga2, "random": _random}
"""Searchers that are Optuna samplers: name -> factory(seed, distributions, band, budget)."""


def make_sampler(
    name: str,
    seed: int,
    distributions: Mapping[str, BaseDistribution],
    band: BandSampler,
    budget_macs: int | None,
) -> BaseSampler:
    """A fresh sampler; the search makes one per trial with a seed derived from the trials
    finished so far, so a resumed search proposes exactly what an uninterrupted one would.
    ``budget_macs`` is None for a Pareto search."""
    if name not in OPTUNA_SAMPLERS:
        raise UserError(f"--sampler: expected one of {', '.join(OPTUNA_SAMPLERS)}, got {name!r}")
    return OPTUNA_SAMPLERS[name](seed, distributions, band, budget_macs)
