"""``slimda-nas report``: the run's searches as one self-contained HTML page (+ PNG, JSON, CSV)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from slimda_nas.cli.search import add_target_labelled


def register(sub) -> None:
    p = sub.add_parser(
        "report", help="HTML report of a run's searches: Pareto front, efficiency, chosen models"
    )
    p.add_argument("--run", required=True, type=Path, help="run folder (runs/NAME)")
    p.add_argument(
        "--storage", help="study storage: journal file or RDB URL (default RUN/study.journal)"
    )
    p.add_argument(
        "--reference",
        type=Path,
        help="another run of the same task (e.g. source-only): its "
        "full-width accuracy is drawn as a reference line",
    )
    p.add_argument("--out", type=Path, help="report folder (default RUN/report)")
    p.add_argument(
        "--no-accuracy", action="store_true", help="do not measure ground-truth accuracy"
    )
    p.add_argument(
        "--no-latency",
        action="store_true",
        help="do not measure the chosen models' batch-1 latency on this machine",
    )
    p.add_argument(
        "--accuracy-points",
        type=int,
        default=24,
        metavar="N",
        help="Pareto-front configurations whose accuracy is measured (default 24)",
    )
    add_target_labelled(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", help="data folder (default: the run's, then $SLIMDA_NAS_DATA)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from slimda_nas.errors import UserError
    from slimda_nas.report import build_report

    if args.accuracy_points < 0:
        raise UserError(
            f"--accuracy-points: expected a non-negative integer, got {args.accuracy_points}"
        )
    page = build_report(
        args.run,
        storage=args.storage,
        reference=args.reference,
        out=args.out,
        accuracy=not args.no_accuracy,
        latency=not args.no_latency,
        accuracy_points=args.accuracy_points,
        device=args.device,
        data_root=args.data_root,
        target_labelled=args.target_labelled,
    )
    console = Console()
    console.print(f"report: {page}  (open it in a browser: file://{page.resolve()})")
    console.print(f"figures, summary.json and summary.csv beside it in {page.parent}")
    return 0
