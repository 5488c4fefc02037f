"""``slimda-nas search``: per budget, the configuration of least UPEM within the MACs budget."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from slimda_nas.cli.eval import add_eval_options

DEFAULT_RUN = Path("runs/usps_mnist")
DEFAULT_CONFIG = "usps_mnist.yaml"


def register(sub) -> None:
    p = sub.add_parser(
        "search", help="search layer widths per MACs budget (Optuna TPE / NSGA-II / baselines)"
    )
    p.add_argument(
        "--run",
        type=Path,
        help=f"trained run folder (default {DEFAULT_RUN}: trained first if absent)",
    )
    p.add_argument(
        "--budget",
        default="1/64",
        help="budget(s): 1/64, 25%%, 0.5, 64M, or 1/2,1/4,1/8 (default 1/64)",
    )
    p.add_argument(
        "--sampler", default="tpe", choices=("tpe", "nsga2", "random", "uniform", "greedy")
    )
    p.add_argument(
        "--trials", type=int, default=100, help="UPEM evaluations per budget (default 100)"
    )
    p.add_argument("--seed", type=int, default=0, help="base seed (worker k uses seed + k)")
    p.add_argument("--storage", help="journal file path or RDB URL (default RUN/study.journal)")
    p.add_argument("--study-name", help="study name (default: sampler-budget-seed-settings)")
    p.add_argument(
        "--workers", type=int, default=1, help="processes sharing the study on this machine"
    )
    p.add_argument(
        "--multi-objective",
        action="store_true",
        help="search the (MACs, UPEM) Pareto front, then pick per budget",
    )
    p.add_argument("--no-report", action="store_true", help="do not (re)write the HTML report")
    add_eval_options(p)
    p.set_defaults(handler=_run)


def _ensure_default_run(args, console: Console) -> Path:
    """The embedded default: train the USPS->MNIST bank when it is not there yet."""
    from slimda_nas.train.checkpoint import load_checkpoint
    from slimda_nas.train.config import PACKAGE_ROOT, load_run_config
    from slimda_nas.train.loop import CHECKPOINT, train_bank

    ckpt = DEFAULT_RUN / CHECKPOINT
    if ckpt.is_file():
        state = load_checkpoint(ckpt)
        if state["iteration"] >= state["config"]["iterations"]:
            return DEFAULT_RUN
    config = Path("configs") / DEFAULT_CONFIG
    if not config.is_file():
        config = PACKAGE_ROOT / "configs" / DEFAULT_CONFIG
    cfg = load_run_config(config, out=str(DEFAULT_RUN), data_root=args.data_root)
    console.print(
        f"[bold]No trained bank at {DEFAULT_RUN}[/]: training the default {cfg.task} bank "
        f"({cfg.method}, {cfg.iterations} iterations, about 5 minutes on 2 CPU cores) from {config}"
    )
    train_bank(cfg)
    return DEFAULT_RUN


def _run(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from slimda_nas.cli.eval import build_evaluator
    from slimda_nas.search.budget import parse_budgets
    from slimda_nas.search.outputs import attach_ground_truth, results_table, write_results
    from slimda_nas.search.runner import SearchOptions, run_search

    console = Console()
    budgets = parse_budgets(args.budget)
    if args.run is None:
        args.run = _ensure_default_run(args, console)
    run, evaluator = build_evaluator(args)
    opts = SearchOptions(
        budgets,
        args.sampler,
        args.trials,
        args.seed,
        args.storage,
        args.study_name,
        args.workers,
        args.multi_objective,
        evaluator.settings,
    )
    opts.check()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("best UPEM {task.fields[best]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    state = {"task": None, "best": float("inf")}

    def on_study(spec, done):
        label = (
            f"{spec.sampler} @ {spec.budget}" if spec.budget else f"{spec.sampler} Pareto front"
        )
        state["task"] = progress.add_task(
            label, total=spec.evaluations, completed=min(done, spec.evaluations), best="-"
        )
        state["best"] = float("inf")

    def on_trial(trial):
        if trial.user_attrs.get("evaluated"):
            progress.advance(state["task"])
        value = trial.values[-1] if trial.values else float("inf")
        feasible = all(v <= 0 for v in trial.constraints.values())
        if feasible and value < state["best"]:
            state["best"] = value
            progress.update(state["task"], best=f"{value:.4f}")

    with progress:
        result = run_search(
            evaluator, opts, rank=_worker_rank(), on_trial=on_trial, on_study=on_study
        )
    attach_ground_truth(result, evaluator)
    path = write_results(result, run.run_dir)
    channels = {i: run.space.unit_channels(c.config) for i, c in enumerate(result.choices)}
    console.print(
        results_table(
            result,
            f"{run.run_dir}: {run.task}, {run.method} bank, head {evaluator.head}",
            channels,
        )
    )
    console.print(
        "* accuracy on the labelled target test split: ground truth, never seen by the search. "
        f"Results: {path} (+ .yaml); study storage: {result.storage}"
    )
    for s in result.studies:
        if s.short:
            console.print(
                f"[yellow]note[/]: {s.sampler} @ {s.budget or 'Pareto front'}: {s.evaluations} of "
                f"{s.requested} evaluations; it kept proposing configurations over the budget or "
                f"already scored ({s.duplicates} repeats). Re-run the command to continue, or try "
                "another --sampler."
            )
    if not args.no_report:
        _write_report(run.run_dir, args, console)
    return 0


def _worker_rank() -> int:
    """Rank of a separately launched worker (seeds = base + rank): $SLIMDA_NAS_WORKER_RANK."""
    import os

    from slimda_nas.errors import UserError

    value = os.environ.get("SLIMDA_NAS_WORKER_RANK", "0")
    if not value.isdigit():
        raise UserError(f"SLIMDA_NAS_WORKER_RANK: expected a non-negative integer, got {value!r}")
    return int(value)


def _write_report(run_dir: Path, args: argparse.Namespace, console: Console) -> None:
    """Refresh the report; the search has succeeded whatever happens here."""
    from slimda_nas.errors import UserError
    from slimda_nas.report import build_report

    try:
        page = build_report(
            run_dir, storage=args.storage, device=args.device, data_root=args.data_root
        )
    except UserError as e:
        console.print(
            f"[yellow]report not written: {e}[/] (`slimda-nas report --run {run_dir}` retries)"
        )
        return
    console.print(f"report: {page}")
