"""The only place that touches Optuna's private API (``study._storage``, ``trial._trial_id``).

Optuna 5 has no public call for two things a shared, resumable search needs:

- a *system* attribute on a running trial (which worker owns it; how many raw draws the feasible
  random sampler made), written from outside ``Trial``'s own methods;
- closing a RUNNING trial left behind by a killed worker as FAIL from another process
  (``study.tell`` only accepts trials this process asked for, or by number with a state check
  that races with the owner).

Both go through the storage directly. The journal file's operation codes (to tell a damaged
journal from one Optuna can replay) come from its private module too. If Optuna changes these
names, only this file changes.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages.journal._storage import JournalOperation
from optuna.trial import FrozenTrial, TrialState

JOURNAL_OP_CODES = frozenset(int(op) for op in JournalOperation)


def set_trial_system_attr(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial, key: str, value: Any
) -> None:
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


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
