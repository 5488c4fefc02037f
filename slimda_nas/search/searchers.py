"""One interface for every searcher ``--sampler`` names: an Optuna sampler (TPE, NSGA-II,
feasible random) run by :class:`StudyWorker`, or a baseline (uniform width, greedy slimming)
run through a :class:`Recorder`. Both get the same :class:`SearchContext`; each sampler owns
its start-up policy (:data:`slimda_nas.search.samplers.STARTUP`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from slimda_nas.search import baselines
from slimda_nas.search.samplers import OPTUNA_SAMPLERS
from slimda_nas.search.worker import SearchContext, StudyWorker


class Searcher(Protocol):
    def search(self, ctx: SearchContext) -> None:
        """Evaluate up to ``ctx.spec.evaluations`` configurations into ``ctx.study``."""


@dataclass(frozen=True)
class OptunaSearcher:
    """An Optuna sampler: every process asks, scores and tells on the shared study."""

    def search(self, ctx: SearchContext) -> None:
        StudyWorker.of(ctx).run()


@dataclass(frozen=True)
class BaselineSearcher:
    """A deterministic baseline: run once, by the first process."""

    run: Callable[[baselines.Recorder], None]

    def search(self, ctx: SearchContext) -> None:
        if ctx.rank == 0:
            self.run(baselines.Recorder(ctx))


SEARCHERS: dict[str, Searcher] = {
    **{name: OptunaSearcher() for name in OPTUNA_SAMPLERS},
    **{name: BaselineSearcher(run) for name, run in baselines.BASELINES.items()},
}
"""Every searcher by its ``--sampler`` name: Optuna samplers, then the baselines."""
