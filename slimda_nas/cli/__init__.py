"""The ``slimda-nas`` command: a thin layer over the Python API.

Each subcommand lives in its own module with ``register(subparsers)``. User mistakes
(:class:`~slimda_nas.errors.UserError`, bad arguments) print one line and exit with code 2;
``--debug`` prints the traceback before that line; the exit code stays the same.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import traceback
import warnings

from slimda_nas._threads import ENV_THREADS, apply_thread_policy, passive_waiting
from slimda_nas.errors import Notice, UserError

_COMMANDS = ("space", "train", "eval", "search", "report", "export", "predict")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="slimda-nas",
        description="Slimmable domain adaptation: train one model bank, search widths per budget, "
        "report and export.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMANDS:
        module = importlib.import_module(f"slimda_nas.cli.{name}")
        module.register(sub)
    for command in _leaf_parsers(sub):
        command.add_argument(
            "--threads",
            type=int,
            help=f"PyTorch threads (default ${ENV_THREADS}, else one per core that other "
            "processes leave free)",
        )
    return parser


def _leaf_parsers(sub) -> list[argparse.ArgumentParser]:
    """The parsers that take options last (``space init``, not ``space``)."""
    leaves = []
    for parser in sub.choices.values():
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        leaves += [p for a in nested for p in _leaf_parsers(a)] if nested else [parser]
    return leaves


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a timeout, ``kill``, a job scheduler), handled like Ctrl-C."""


def _terminate(signum, frame) -> None:
    raise _Terminated


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passive_waiting()  # before anything imports torch (see slimda_nas/_threads.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None or not hasattr(args, "handler"):
        parser.print_help()
        return 2
    debug = args.debug or bool(os.environ.get("SLIMDA_NAS_DEBUG"))
    command = f"slimda-nas {args.command}"
    try:
        threads_before = apply_thread_policy(getattr(args, "threads", None))
    except UserError as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return e.exit_code
    # An exception rather than the default exit: `finally` blocks run, so the study journal's
    # lock is released and a trial in progress is closed before the process ends.
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave signals to the caller
        previous = None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_notice(command, warnings.showwarning)
            return int(args.handler(args) or 0)
    except UserError as e:
        _traceback_if(debug)
        print(f"{command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # the file system said no: a read-only folder, a full disk...
        _traceback_if(debug)
        print(f"{command}: error: {_os_error(e, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"{command}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 143 if isinstance(e, _Terminated) else 130
    except Exception as e:  # a bug, not bad input: say so in one line unless debugging
        _traceback_if(debug)
        print(
            f"{command}: internal error: {type(e).__name__}: {e}"
            + ("" if debug else " (re-run with --debug for the traceback)"),
            file=sys.stderr,
        )
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _restore_threads(threads_before)  # for callers of main() in their own process


def _restore_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _show_notice(command: str, default):
    """Print a :class:`Notice` as one line; other warnings as Python would."""

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, Notice):
            print(f"{command}: note: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def _traceback_if(debug: bool) -> None:
    """With --debug: the exception being handled, in full, on stderr."""
    if debug:
        traceback.print_exc()


def _os_error(e: OSError, args: argparse.Namespace) -> str:
    """One line naming the path; a write that Python reports without one (a full disk under a
    journal or cache write) names the folder the command was writing into."""
    where = e.filename
    if where is None:
        folder = getattr(args, "out", None) or getattr(args, "run", None)
        where = f"while writing under {folder}" if folder else None
    reason = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        reason = "no space left on device; free some space and run the same command again"
    return f"{where}: {reason}" if where else reason


if __name__ == "__main__":
    sys.exit(main())
