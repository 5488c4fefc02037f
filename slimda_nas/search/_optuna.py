"""The only place that touches Optuna's private API (``study._storage``, ``trial._trial_id``).

Optuna 5 has no public call for some things a shared, resumable search needs:

- a *system* attribute on a running trial (which worker owns it; how many raw draws the feasible
  random sampler made), written from outside ``Trial``'s own methods;
- closing a RUNNING trial left behind by a killed worker as FAIL from another process
  (``study.tell`` only accepts trials this process asked for, or by number with a state check
  that races with the owner);
- a bounded history for TPE (its samplers read a study's trials through ``study._get_trials``);
- writing a trial's many small records (one per parameter and attribute) to the journal file in
  one append instead of one locked, fsynced append each (:func:`batched_writes`).

They go through the storage directly. The journal file's operation codes (to tell a damaged
journal from one Optuna can replay) come from its private module too. If Optuna changes these
names, only this file changes.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._storage import JournalOperation
from optuna.trial import FrozenTrial, TrialState

JOURNAL_OP_CODES = frozenset(int(op) for op in JournalOperation)

# Records that only add to a running trial (a parameter, an attribute): nothing this process
# reads back before the trial is told depends on them being in the file yet.
_DEFERRABLE = frozenset(
    int(op)
    for op in (
        JournalOperation.SET_TRIAL_PARAM,
        JournalOperation.SET_TRIAL_USER_ATTR,
        JournalOperation.SET_TRIAL_SYSTEM_ATTR,
    )
)


class BatchingJournalBackend(JournalFileBackend):
    """Optuna's journal file, where the records of one batch (see :func:`batched_writes`) go to
    the file in one locked, fsynced append: a trial writes one record per parameter and
    attribute (about 20 on the digits space, 50 on ResNet-50), and each append costs a lock, an
    fsync and a re-read (1-7 ms on a loaded machine). Outside a batch it is Optuna's backend.

    In a batch, parameter and attribute records wait; any other record (a trial created, told,
    failed) is written together with those waiting, in order, so the file never holds a
    trial's end before its parameters. A kill loses only waiting records of a trial that was
    still running: the next run fails that trial, as it fails any a killed worker left."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._waiting: list[dict[str, Any]] | None = None  # None: not in a batch

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if self._waiting is not None and all(log["op_code"] in _DEFERRABLE for log in logs):
            self._waiting.extend(logs)
            return
        self._write(logs)

    def _write(self, logs: list[dict[str, Any]]) -> None:
        # The waiting records leave the buffer before the append, and a failed append is not
        # tried again: a retry after a partial write (a full disk) would put records after a
        # cut line in the middle of the file. What is lost belongs to a running trial, which
        # the next run fails.
        if self._waiting:
            logs, self._waiting[:] = [*self._waiting, *logs], []
        if logs:
            super().append_logs(logs)


@contextmanager
def batched_writes(study: optuna.Study) -> Iterator[None]:
    """Write what the block adds to a study's running trial in one append (a no-op on other
    storages). At the end the records are written and read back, so that a record on a trial
    another worker closed meanwhile raises ``UpdateFinishedTrialError`` here, once, as an
    unbatched write would have. Inside the block, what Optuna reads back from the storage (e.g.
    the trial ``sampler.after_trial`` gets in ``tell``) lacks the waiting records. One batch
    per process at a time: the search writes from one thread."""
    backend = getattr(study._storage, "_backend", None)
    if not isinstance(backend, BatchingJournalBackend) or backend._waiting is not None:
        yield
        return
    backend._waiting = []
    try:
        yield
    except BaseException:
        try:  # keep what was written (a kill mid-step: the trial is failed next run anyway)
            _flush(study, backend, raise_closed=False)
        except Exception:
            pass  # the first error is the one to report
        raise
    _flush(study, backend, raise_closed=True)


def _flush(study: optuna.Study, backend: BatchingJournalBackend, raise_closed: bool) -> None:
    try:
        backend._write([])
    finally:
        backend._waiting = None
    closed = False
    while True:  # the replay raises once per record of ours on a closed trial, then goes on
        try:
            study._storage.get_all_studies()  # a read: replays the records just written
            break
        except optuna.exceptions.UpdateFinishedTrialError:
            closed = True
    if closed and raise_closed:
        raise optuna.exceptions.UpdateFinishedTrialError("the trial was closed by another worker")


def check_running(study: optuna.Study, trial: optuna.Trial) -> None:
    """Raise ``UpdateFinishedTrialError`` if another worker closed the trial (read afresh)."""
    frozen = study._storage.get_trial(trial._trial_id)
    study._storage.check_trial_is_updatable(trial._trial_id, frozen.state)


def tell_running(study: optuna.Study, trial: optuna.Trial, *args, **kwargs) -> FrozenTrial:
    """``study.tell``, where a trial another worker closed since the caller last looked raises
    ``UpdateFinishedTrialError`` (as every other write to it does), not ``tell``'s ValueError."""
    try:
        return study.tell(trial, *args, **kwargs)
    except ValueError:
        check_running(study, trial)  # raises if it was closed meanwhile
        raise


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
