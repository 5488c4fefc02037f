"""The ``slimda-nas`` command: a thin layer over the Python API.

Each subcommand lives in its own module with ``register(subparsers)``. User mistakes
(:class:`~slimda_nas.errors.UserError`, bad arguments) print one line and exit with code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from slimda_nas.errors import UserError

_COMMANDS = ("space", "train", "eval", "search", "report", "export")


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
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None or not hasattr(args, "handler"):
        parser.print_help()
        return 2
    debug = args.debug or bool(os.environ.get("SLIMDA_NAS_DEBUG"))
    try:
        return int(args.handler(args) or 0)
    except UserError as e:
        if debug:
            raise
        print(f"slimda-nas {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # the file system said no: a read-only folder, a full disk...
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"slimda-nas {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"slimda-nas {args.command}: interrupted; re-run the same command to resume",
            file=sys.stderr,
        )
        return 130
    except Exception as e:  # a bug, not bad input: say so in one line unless debugging
        if debug:
            raise
        print(
            f"slimda-nas {args.command}: internal error: {type(e).__name__}: {e} "
            "(re-run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
