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
from slimda_nas.search._optuna import BoundedStudyView, set_trial_system_attr

TPE_HISTORY = 500
"""Finished trials TPE models besides the best 25 (see :class:`BoundedHistorySampler`)."""


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


class BoundedHistorySampler(BaseSampler):
    """A sampler that models only part of a long study's history: the last ``recent`` finished
    trials and the ``best`` feasible ones (running trials always). TPE's cost per proposal grows
    with every trial it models; past a few hundred, the newest and the best carry what it needs
    (its "good" group is the best 10 %, at most 25 trials), and the cost stops growing."""

    def __init__(
        self,
        inner: BaseSampler,
        distributions: Mapping[str, BaseDistribution] | None = None,
        recent: int = TPE_HISTORY,
        best: int = 25,
    ) -> None:
        self._inner, self._recent, self._best = inner, recent, best
        self._views: dict[int, BoundedStudyView] = {}
        # The search space is fixed and known: no need for the sampler to infer it from every
        # trial again (the inference is O(trials) and its cache dies with each fresh sampler).
        self._space = (
            None
            if distributions is None
            else {n: d for n, d in distributions.items() if not d.single()}
        )

    def _view(self, study):
        # one view per study (what it keeps is worked out once per proposal)
        view = self._views.get(id(study))
        if view is None or view._study is not study:
            view = self._views[id(study)] = BoundedStudyView(study, self._recent, self._best)
        return view

    def before_trial(self, study, trial):
        self._views.pop(id(study), None)  # a new proposal: the history has grown
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        if self._space is not None:
            return dict(self._space)
        return self._inner.infer_relative_search_space(self._view(study), trial)

    def sample_relative(self, study, trial, search_space):
        return self._inner.sample_relative(self._view(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._inner.sample_independent(
            self._view(study), trial, param_name, param_distribution
        )

    def after_trial(self, study, trial, state, values):
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


Factory = Callable[[int, Mapping[str, BaseDistribution], BandSampler, "int | None"], BaseSampler]


def _tpe(seed, distributions, band, budget_macs) -> BaseSampler:
    tpe = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=10, multivariate=True, constant_liar=True
    )
    return BoundedHistorySampler(tpe, distributions)


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
