"""``slimda-nas search``: per budget, the configuration of least UPEM within the MACs budget."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slimda_nas.cli.eval import add_eval_options


def register(sub) -> None:
    from slimda_nas.search import SAMPLERS
    from slimda_nas.train import DEFAULT_RUN

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
    p.add_argument("--sampler", default="tpe", choices=SAMPLERS)
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
    p.add_argument(
        "--no-repair",
        action="store_true",
        help="do not replace a proposal over the budget or already scored by the closest "
        "free configuration, nor begin with the bank's reference models (the uniform and the "
        "smallest that fit): the sampler's raw proposals only",
    )
    p.add_argument("--no-report", action="store_true", help="do not (re)write the HTML report")
    add_target_labelled(p)
    add_eval_options(p)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from slimda_nas.cli.eval import build_evaluator
    from slimda_nas.search import SearchOptions, parse_budgets, run_search
    from slimda_nas.train import default_run

    console = Console()
    budgets = parse_budgets(args.budget)
    if args.run is None:
        args.run = default_run(
            data_root=args.data_root, on_train=lambda cfg: _training(cfg, console)
        )
    run, evaluator = build_evaluator(args)
    labelled = _labelled(args, run)  # a bad folder fails before the search starts
    opts = SearchOptions(
        budgets=budgets,
        sampler=args.sampler,
        evaluations=args.trials,
        seed=args.seed,
        storage=args.storage,
        study_name=args.study_name,
        workers=args.workers,
        multi_objective=args.multi_objective,
        repair=not args.no_repair,
        settings=evaluator.settings,
    )
    opts.check()
    with _SearchProgress() as progress:
        result = run_search(
            evaluator,
            opts,
            rank=_worker_rank(),
            on_trial=progress.on_trial,
            on_study=progress.on_study,
        )
    title = f"{run.run_dir}: {run.task}, {run.method} bank, head {evaluator.head}"
    console.print(results_table(result, run.space, title))
    console.print(
        "* accuracy on the labelled target test split: ground truth, never seen by the search. "
        f"Results: {result.results_file} (+ .yaml); study storage: {result.storage}"
    )
    if labelled is not None:
        from slimda_nas.evaluate.labelled import labelled_accuracy

        configs = {f"{k.budget.text} {k.sampler}": k.point.config for k in result.picks}
        console.print(labelled_table(labelled_accuracy(evaluator, labelled, configs)))
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


def add_target_labelled(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target-labelled",
        type=Path,
        metavar="DIR",
        help="a few labelled target images (DIR/<class>/*.jpg or a list file): used only to "
        "report the accuracy of the picks, never to choose them",
    )


def _labelled(args: argparse.Namespace, run):
    from slimda_nas.evaluate.labelled import load_labelled_target

    if args.target_labelled is None:
        return None
    return load_labelled_target(args.target_labelled, run)


def labelled_table(record: dict) -> Table:
    """Accuracy of each model on the --target-labelled images, and how many they are."""
    t = Table(
        title=f"accuracy on {record['images']} labelled target images ({record['folder']}): "
        "reported only, the picks were made without them"
    )
    t.add_column("model")
    t.add_column("accuracy", justify="right")
    for label, acc in record["accuracy"].items():
        t.add_row(label, f"{acc:.2%}")
    return t


def _training(cfg, console: Console) -> None:
    console.print(
        f"[bold]No trained bank at {cfg.run_dir}[/]: training the default {cfg.task} bank "
        f"({cfg.method}, {cfg.iterations} iterations, 5 to 80 minutes on 2 CPU cores)"
    )


class _SearchProgress:
    """One progress bar per study: UPEM evaluations done, best feasible UPEM so far."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best UPEM {task.fields[best]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.task = None
        self.best = float("inf")

    def __enter__(self) -> _SearchProgress:
        return self  # the display starts with the first study: an error before prints no line

    def __exit__(self, *exc) -> None:
        if self.task is not None:
            self.progress.__exit__(*exc)

    def on_study(self, spec, done: int) -> None:
        if self.task is None:
            self.progress.__enter__()
        label = (
            f"{spec.sampler} @ {spec.budget}" if spec.budget else f"{spec.sampler} Pareto front"
        )
        self.task = self.progress.add_task(
            label, total=spec.evaluations, completed=min(done, spec.evaluations), best="-"
        )
        self.best = float("inf")

    def on_trial(self, trial) -> None:
        from slimda_nas.search.record import is_evaluated

        if is_evaluated(trial):
            self.progress.advance(self.task)
        value = trial.values[-1] if trial.values else float("inf")
        feasible = all(v <= 0 for v in trial.constraints.values())
        if feasible and value < self.best:
            self.best = value
            self.progress.update(self.task, best=f"{value:.4f}")


def results_table(result, space, title: str) -> Table:
    """One row per (budget, sampler): the chosen model, its widths as channels per unit."""
    from slimda_nas.cost.budget import format_fraction, format_macs

    t = Table(title=title)
    metric = result.metric
    for col in (
        "budget",
        "sampler",
        "MACs (thop)",
        f"UPEM {metric}",
        "acc.*",
        "evals",
        "feas.",
        "channels per unit",
    ):
        t.add_column(
            col,
            justify="left" if col in ("budget", "sampler", "channels per unit") else "right",
            overflow="fold",
        )
    studies = {s.name: s for s in result.studies}
    for k in result.picks:
        s = studies[k.point.study]
        t.add_row(
            k.budget.text,
            k.sampler,
            f"{format_macs(k.point.macs)} = {format_fraction(k.point.macs / k.budget.anchor_macs)}",
            f"{k.point.upem[metric]:.4f}",
            "-" if k.accuracy is None else f"{k.accuracy:.2%}",
            str(s.evaluations),
            "-" if s.feasible_fraction is None else f"{s.feasible_fraction:.0%}",
            "-".join(str(v) for v in space.unit_channels(k.point.config).values()),
        )
    return t


def _worker_rank() -> int:
    """Rank of a separately launched worker (seeds = base + rank): $SLIMDA_NAS_WORKER_RANK."""
    import os

    from slimda_nas.errors import UserError

    value = os.environ.get("SLIMDA_NAS_WORKER_RANK", "0")
    if not value.isdecimal():
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
