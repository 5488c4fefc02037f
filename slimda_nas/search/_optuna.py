"""The only place that touches Optuna's private API (``study._storage``, ``trial._trial_id``).

Optuna 5 has no public call for two things a shared, resumable search needs:

- a *system* attribute on a running trial (which worker owns it; how many raw draws the feasible
  random sampler made), written from outside ``Trial``'s own methods;
- closing a RUNNING trial left behind by a killed worker as FAIL from another process
  (``study.tell`` only accepts trials this process asked for, or by number with a state check
  that races with the owner);
- a bounded history for TPE (its samplers read a study's trials through ``study._get_trials``).

Both go through the storage directly. The journal file's operation codes (to tell a damaged
journal from one Optuna can replay) come from its private module too. If Optuna changes these
names, only this file changes.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import optuna
from optuna.storages.journal._storage import JournalOperation
from optuna.trial import FrozenTrial, TrialState

JOURNAL_OP_CODES = frozenset(int(op) for op in JournalOperation)


def set_trial_system_attr(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial, key: str, value: Any
) -> None:
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


class BoundedStudyView:
    """The study as a sampler sees it with its history bounded: every running trial, the last
    ``recent`` finished ones and the ``best`` feasible ones by value; everything else (storage,
    directions) is the study's own. What is kept is worked out once per view (one pass over the
    trials, reading ``FrozenTrial._values`` rather than the copying ``values`` property)."""

    def __init__(self, study: optuna.Study, recent: int, best: int) -> None:
        self._study, self._recent, self._best = study, recent, best
        self._keep: set[int] | None = None

    def _kept(self, trials: list[FrozenTrial]) -> set[int]:
        if self._keep is None:
            done = [t for t in trials if t.state != TrialState.RUNNING]
            keep = {t.number for t in done[-self._recent :]}
            # the search tells a proposal over its budget as +inf: finite values are feasible
            scored = []
            for t in done:
                v = t._values
                if v and v[-1] < math.inf:
                    scored.append((v[-1], t.number))
            keep.update(number for _, number in heapq.nsmallest(self._best, scored))
            self._keep = keep
        return self._keep

    def _get_trials(self, deepcopy=False, states=None, use_cache=False):
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        if len(trials) <= self._recent + self._best:
            return trials
        everything = self._study._get_trials(deepcopy=False, use_cache=True)
        keep = self._kept(everything)
        return [t for t in trials if t.state == TrialState.RUNNING or t.number in keep]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


def waiting_params(trial: FrozenTrial) -> dict:
    """The parameters ``study.enqueue_trial`` fixed for a WAITING trial (Optuna keeps them as a
    system attribute until the trial is asked)."""
    return dict(trial.system_attrs.get("fixed_params") or {})


def fail_running_trial(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Mark a RUNNING trial FAIL; False when its worker finished it meanwhile."""
    try:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True
