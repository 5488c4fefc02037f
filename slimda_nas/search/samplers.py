"""Samplers behind Optuna's one interface, registered by name: TPE and NSGA-II as Optuna ships
them, and the random baseline (uniform over the FEASIBLE configurations). The searchers that
need no sampler (uniform width, greedy slimming) are in ``baselines``."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler

from slimda_nas.cost.feasible import BandSampler
from slimda_nas.errors import UserError
from slimda_nas.search._optuna import BoundedStudyView, set_trial_system_attr

TPE_STARTUP = 10
"""TPE's start-up trials. At a budget they are drawn as feasible random configurations: TPE's
own would be uniform over the whole space, where at 1/64 almost none fit."""
TPE_HISTORY = 200
"""Finished trials TPE models besides the best 25 (see :class:`BoundedHistorySampler`): 200
costs a fifth less per proposal than 500 at 1,000+ trials and finds as well (BENCHMARKS.md
section 9), and leaves a default search untouched (100 evaluations end within 175-181 trials
with repair, BENCHMARKS.md section 9)."""


class FeasibleRandomSampler(BaseSampler):
    """Draws whole configurations uniformly among those within the budget (all of them in a
    Pareto search): by rejection while that finds one, else by a random walk over the feasible
    set (see :class:`~slimda_nas.cost.feasible.BandSampler`).

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


class FixedSpaceSampler(BaseSampler):
    """An Optuna sampler given the search space once instead of inferring it from every trial:
    the space is fixed and known, and the inference (an intersection over all finished trials)
    costs O(trials) per proposal, its cache dying with each fresh sampler (the search makes one
    per trial). Everything else is the inner sampler's, on the study :meth:`_study` returns."""

    def __init__(self, inner: BaseSampler, distributions: Mapping[str, BaseDistribution]) -> None:
        self._inner = inner
        self._space = {n: d for n, d in distributions.items() if not d.single()}

    def _study(self, study):
        return study

    def infer_relative_search_space(self, study, trial):
        return dict(self._space)

    def before_trial(self, study, trial):
        self._inner.before_trial(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._inner.sample_relative(self._study(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._inner.sample_independent(
            self._study(study), trial, param_name, param_distribution
        )

    def after_trial(self, study, trial, state, values):
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


class BoundedHistorySampler(FixedSpaceSampler):
    """A sampler that models only part of a long study's history: the last ``recent`` finished
    trials and the ``best`` feasible ones (running trials always). TPE's cost per proposal grows
    with every trial it models; past a few hundred, the newest and the best carry what it needs
    (its "good" group is the best 10 %, at most 25 trials), and the cost stops growing."""

    def __init__(
        self,
        inner: BaseSampler,
        distributions: Mapping[str, BaseDistribution],
        recent: int = TPE_HISTORY,
        best: int = 25,
    ) -> None:
        super().__init__(inner, distributions)
        self._recent, self._best = recent, best
        self._views: dict[int, BoundedStudyView] = {}

    def _study(self, study):
        # one view per study (what it keeps is worked out once per proposal)
        view = self._views.get(id(study))
        if view is None or view._study is not study:
            view = self._views[id(study)] = BoundedStudyView(study, self._recent, self._best)
        return view

    def before_trial(self, study, trial):
        self._views.pop(id(study), None)  # a new proposal: the history has grown
        super().before_trial(study, trial)


Factory = Callable[[int, Mapping[str, BaseDistribution], BandSampler, "int | None"], BaseSampler]


def _tpe(seed, distributions, band, budget_macs) -> BaseSampler:
    tpe = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=TPE_STARTUP, multivariate=True, constant_liar=True
    )
    return BoundedHistorySampler(tpe, distributions, recent=TPE_HISTORY)


def _nsga2(seed, distributions, band, budget_macs) -> BaseSampler:
    nsga2 = optuna.samplers.NSGAIISampler(seed=seed, population_size=16)
    # sorted by name, the order Optuna's own inference gives: the same proposals as without
    return FixedSpaceSampler(nsga2, dict(sorted(distributions.items())))


def _random(seed, distributions, band, budget_macs) -> BaseSampler:
    return FeasibleRandomSampler(distributions, band, budget_macs, seed=seed)


OPTUNA_SAMPLERS: dict[str, Factory] = {"tpe": _tpe, "nsga2": _nsga2, "random": _random}
"""Searchers that are Optuna samplers: name -> factory(seed, distributions, band, budget)."""

STARTUP: dict[str, int] = {"tpe": TPE_STARTUP}
"""Each sampler's start-up policy: its first N evaluations at a budget are feasible random
configurations (samplers not named here start with their own proposals)."""


REFERENCES: frozenset[str] = frozenset({"tpe", "nsga2"})
"""Samplers whose study at a budget begins with the bank's trained reference models that fit
(the widest uniform model, the smallest: :func:`slimda_nas.search.worker.reference_configs`).
The sandwich trains them at every step, and a model search guided by a label-free score
should never return worse than them: on the Office-31 A->W CPU bank (BENCHMARKS.md section
12), 60 TPE evaluations at 1/8 ended at a pick of UPEM 1.16 and 47.2% while the uniform model
scored UPEM 0.85 and 54.1%. The random baseline stays random."""


def proposer(name: str, evaluated: int, multi_objective: bool) -> str:
    """The sampler that proposes the next trial of a study of ``name`` with ``evaluated``
    evaluations so far: ``name`` itself, or ``random`` during its start-up at a budget."""
    if not multi_objective and evaluated < STARTUP.get(name, 0):
        return "random"
    return name


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
