"""``slimda-nas export``: a chosen sub-network as a standalone, verified model."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slimda_nas.cli.eval import add_eval_options

#: Scoring options left unset on the command line take the values the search recorded.
_FROM_SEARCH = (
    "metric",
    "calibration_images",
    "scoring_images",
    "subset_seed",
    "batch_size",
    "head",
)


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a chosen sub-network (TorchScript, .pt2, ONNX, state_dict), verified",
    )
    p.add_argument("--run", required=True, type=Path, help="run folder (runs/NAME)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--budget", help="the chosen model of this searched budget (1/64, 25%%, 64M)"
    )
    which.add_argument("--trial", type=int, help="trial number of --study")
    which.add_argument("--largest", action="store_true", help="the full-width model")
    which.add_argument("--config-file", type=Path, help="YAML/JSON mapping unit -> width")
    which.add_argument(
        "--pareto", action="store_true", help="every configuration on the run's Pareto front"
    )
    p.add_argument(
        "--sampler", help="with --budget: that sampler's choice (default: best UPEM over samplers)"
    )
    p.add_argument("--study", help="with --trial: the study name (see the report's studies table)")
    p.add_argument(
        "--format",
        default="torchscript",
        help="torchscript (default), pt2, onnx or state_dict, or several joined by commas",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="output folder (default RUN/export/<label>; with --pareto the parent)",
    )
    p.add_argument(
        "--storage", help="study storage for --trial/--pareto (default RUN/study.journal)"
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest logit difference allowed, relative to the largest logit (default 1e-4)",
    )
    add_eval_options(p)
    p.set_defaults(handler=_run, **dict.fromkeys(_FROM_SEARCH))


def _run(args: argparse.Namespace) -> int:

    from slimda_nas.cli.eval import build_evaluator
    from slimda_nas.export import (
        ExportError,
        export_model,
        export_pareto,
        parse_formats,
        recorded_settings,
        select,
    )

    formats = parse_formats(args.format)
    if args.tolerance <= 0:
        raise ExportError(f"--tolerance: expected a positive number, got {args.tolerance}")
    if args.study is not None and args.trial is None:
        raise ExportError("--study: only with --trial N")
    if args.trial is not None and not args.study:
        raise ExportError("--trial: needs --study NAME (see the studies table of the report)")
    if args.run.is_dir():  # what can fail without the bank and the images fails first
        _preflight(args, select)
    recorded = (
        recorded_settings(
            args.run, study=args.study if args.trial is not None else None, storage=args.storage
        )
        or {}
    )
    _fill_from_search(args, recorded)
    _, evaluator = build_evaluator(args, anchor=recorded.get("anchor"))
    common = dict(formats=formats, out=args.out, storage=args.storage, tolerance=args.tolerance)
    if args.pareto:
        results = export_pareto(evaluator, **common)
    else:
        results = [
            export_model(
                evaluator,
                budget=args.budget,
                sampler=args.sampler,
                study=args.study,
                trial=args.trial,
                config_file=args.config_file,
                largest=args.largest,
                **common,
            )
        ]
    console = Console()
    for r in results:
        console.print(_table(r))
    return 0


def _preflight(args: argparse.Namespace, select) -> None:
    from slimda_nas.export.staging import check_target
    from slimda_nas.report.studies import open_run_storage
    from slimda_nas.search.storage import describe

    if args.budget is not None:
        select.by_budget(args.run, args.budget, args.sampler)
    if args.trial is not None:
        storage = open_run_storage(args.storage, args.run)
        select.by_trial(storage, args.study, args.trial, describe(args.storage, args.run))
    if args.out is not None and not args.pareto:
        check_target(args.out)


def _fill_from_search(args: argparse.Namespace, recorded: dict) -> None:
    """Score exactly as the search did unless an option says otherwise."""
    from slimda_nas.evaluate.evaluator import EvalSettings

    search = EvalSettings.from_record(recorded)
    for name in _FROM_SEARCH:
        if getattr(args, name) is None:
            setattr(args, name, getattr(search, name))
    if not search.recalibrate_bn:
        args.no_bn_recal = True


def _table(result) -> Table:
    rec = result.record
    v = rec["verification"]
    acc = "-" if rec["accuracy"] is None else f"{rec['accuracy']:.2%}"
    t = Table(
        title=f"{result.label} -> {result.out}\n{rec['macs']:,} MACs (thop; equals the search's: "
        f"{'yes' if v['macs']['passed'] else 'NO'}), UPEM {rec['upem'][rec['metric']]:.4f}, "
        f"accuracy {acc}"
    )
    for col in ("file", "size", "max |logit diff|", "accuracy file / bank", "seconds"):
        t.add_column(col, justify="left" if col == "file" else "right")
    for name, f in v["files"].items():
        a = f.get("accuracy")
        t.add_row(
            name,
            f"{f['bytes'] / 1024:.0f} KiB",
            f"{f['logits']['max_abs_diff']:.1e}",
            _acc_cell(a, rec),
            f"{f['seconds']['write_and_verify']:.1f}",
        )
    return t


def _acc_cell(a: dict | None, rec: dict) -> str:
    if a is None:
        return "-"
    cell = f"{a['exported']:.2%} / {a['bank']:.2%}"
    full = rec["verification"]["files"]
    most = max(f["accuracy"]["images"] for f in full.values() if f.get("accuracy"))
    return cell if a["images"] == most else f"{cell} (first {a['images']} images)"
