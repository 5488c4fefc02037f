"""How many PyTorch threads a command uses, so that a machine shared with other jobs slows down
in proportion to the cores they take, not 16x.

Measured on the 2-core benchmark machine with a 1-thread job on the other core
(docs/own-data.md, ``benchmarks/shared_cores.py``): a digits training step took 14.3 s with 2 threads
(OpenMP threads spin-waiting for a core that is not free), 1.1 s with 2 threads and
``OMP_WAIT_POLICY=PASSIVE``, and 0.97 s with 1 thread. So: passive waiting, set before torch
starts OpenMP, and one thread per core that is free now (cores this process may use minus the
1-minute load average), unless ``--threads`` or ``$SLIMDA_NAS_THREADS`` says otherwise.
"""

from __future__ import annotations

import math
import os

from slimda_nas.errors import UserError

ENV_THREADS = "SLIMDA_NAS_THREADS"


def passive_waiting() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless the user set a policy; effective only before torch
    is imported (OpenMP reads it once)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def free_cores() -> int:
    """Cores this process may use that other processes are not keeping busy (at least 1)."""
    cores = usable_cores()
    try:
        busy = os.getloadavg()[0]
    except OSError:
        return cores
    return max(1, min(cores, cores - math.floor(busy + 0.5)))


def choose_threads(option: int | None = None) -> tuple[int, str]:
    """(threads, why): ``option`` (--threads), else $SLIMDA_NAS_THREADS, else the free cores."""
    if option is not None:
        if option < 1:
            raise UserError(f"--threads: expected a positive integer, got {option}")
        return _at_most_per_core("--threads", option), "--threads"
    env = os.environ.get(ENV_THREADS, "").strip()
    if env:
        if not env.isdecimal() or int(env) < 1:
            raise UserError(f"${ENV_THREADS}: expected a positive integer, got {env!r}")
        return _at_most_per_core(f"${ENV_THREADS}", int(env)), f"${ENV_THREADS}"
    return free_cores(), f"free cores of {usable_cores()} (load average)"


THREADS_PER_CORE = 4
"""The most threads per usable core a user may ask for: more than one per core only adds
contention, and thousands stall torch's thread pool for minutes (``--threads 10000``)."""


def _at_most_per_core(name: str, threads: int) -> int:
    limit = THREADS_PER_CORE * usable_cores()
    if threads > limit:
        raise UserError(
            f"{name}: expected at most {limit} ({THREADS_PER_CORE} per core this process may "
            f"use), got {threads}"
        )
    return threads


def apply_thread_policy(option: int | None = None) -> int:
    """Passive OpenMP waiting and :func:`choose_threads`' count for torch; the count torch had
    before (for a caller in the same process to restore)."""
    passive_waiting()
    import torch

    threads, _ = choose_threads(option)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    return before
