"""``slimda-nas export``: a chosen sub-network as a standalone, verified model."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slimda_nas.cli.eval import add_eval_options
from slimda_nas.cli.search import add_target_labelled, labelled_table
from slimda_nas.deploy.latency import LatencyRecord, format_ms, one_thread_text

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
    p.add_argument(
        "--no-latency",
        action="store_true",
        help="do not measure batch-1 latency (PyTorch and ONNX Runtime) on this machine",
    )
    add_target_labelled(p)
    add_eval_options(p)
    p.set_defaults(handler=_run, **dict.fromkeys(_FROM_SEARCH))


def _run(args: argparse.Namespace) -> int:
    from slimda_nas.export import export_model, export_pareto, parse_formats

    formats = parse_formats(args.format)  # a missing exporter fails before anything loads
    common = dict(
        formats=formats,
        out=args.out,
        storage=args.storage,
        tolerance=args.tolerance,
        latency=not args.no_latency,
        scoring=_scoring(args),
        device=args.device,
        data_root=args.data_root,
        target_labelled=args.target_labelled,
    )
    if args.pareto:
        results = export_pareto(args.run, **common)
    else:
        results = [
            export_model(
                args.run,
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
        if r.record.target_labelled is not None:
            console.print(labelled_table(r.record.target_labelled))
    return 0


def _scoring(args: argparse.Namespace) -> dict:
    """The scoring options given on the command line; the rest come from the search's record."""
    from slimda_nas.space import load_config
    from slimda_nas.train import load_run

    given = {name: getattr(args, name) for name in _FROM_SEARCH if getattr(args, name) is not None}
    if args.no_bn_recal:
        given["recalibrate_bn"] = False
    if args.anchor:
        given["anchor"] = load_config(args.anchor, load_run(args.run, device="cpu").space)
    return given


def _table(result) -> Table:
    rec = result.record
    acc = "-" if rec.accuracy is None else f"{rec.accuracy:.2%}"
    t = Table(
        title=f"{result.label} -> {result.out}\n{rec.macs:,} MACs (thop; equals the search's: "
        f"{'yes' if rec.macs_passed else 'NO'}), UPEM {rec.upem_value:.4f}, "
        f"accuracy {acc}"
    )
    for col in ("file", "size", "max |logit diff|", "accuracy file / bank", "seconds"):
        t.add_column(col, justify="left" if col == "file" else "right")
    checks = rec.file_checks
    most = max((f.accuracy[2] for f in checks if f.accuracy), default=0)
    for f in checks:
        t.add_row(
            f.name,
            f"{f.bytes / 1024:.0f} KiB",
            f"{f.max_abs_diff:.1e}",
            _acc_cell(f.accuracy, most),
            f"{f.seconds:.1f}",
        )
    if rec.latency_record is not None:
        t.caption = latency_caption(rec.latency_record)
    return t


def latency_caption(lat: LatencyRecord) -> str:
    """One line: this model's and the full-width model's batch-1 latency on this machine."""
    m, full = lat.get("model"), lat.get("full_width")
    return (
        f"latency at batch 1 on this machine ({lat.where}): "
        f"PyTorch {format_ms(m, 'pytorch')}, ONNX Runtime {format_ms(m, 'onnxruntime')}"
        f"{one_thread_text(m or {})}; full width {format_ms(full, 'pytorch')} / "
        f"{format_ms(full, 'onnxruntime')}. Another device gives other numbers."
    )


def _acc_cell(a: tuple[float, float, int] | None, most: int) -> str:
    if a is None:
        return "-"
    exported, bank, images = a
    cell = f"{exported:.2%} / {bank:.2%}"
    return cell if images == most else f"{cell} (first {images} images)"
