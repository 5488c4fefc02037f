"""Search workers die with the search that started them: a ``kill -9`` of the parent must not
leave an orphan that goes on writing trials into the study journal."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
POLL_S = 1.0  # how often the fallback watchdog looks at the parent
GRACE_S = 10.0  # after SIGTERM, how long a worker may take to close its trial before it is ended


def die_with_parent(parent_pid: int) -> None:
    """Make this process receive SIGTERM (closing its trial as an interrupt does) when
    ``parent_pid`` ends: the kernel's parent-death signal on Linux, and everywhere a watchdog
    thread that notices the parent is gone (a process re-parented to init or a subreaper)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still works
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        _end()
    threading.Thread(target=_watch, args=(parent_pid,), daemon=True, name="lifeline").start()


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_S)
    _end()


def _end() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # the worker's handler closes its trial, then exits
    time.sleep(GRACE_S)
    os._exit(143)  # the handler could not run (the main thread is stuck in C code)
