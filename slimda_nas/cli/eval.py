"""``slimda-nas eval``: score configurations of a trained bank (MACs, UPEM, ground-truth accuracy)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slimda_nas.errors import ConfigError


def add_eval_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``eval`` and ``search``: how a candidate is scored."""
    from slimda_nas.evaluate.evaluator import EvalSettings
    from slimda_nas.evaluate.scores import SCORES

    d = EvalSettings()
    g = p.add_argument_group("scoring (UPEM)")
    g.add_argument(
        "--metric",
        default=d.metric,
        choices=tuple(SCORES),
        metavar="NAME",
        help=f"label-free score the search minimises (default {d.metric}; "
        f"one of {', '.join(SCORES)}; docs/method.md)",
    )
    g.add_argument("--head", help="head to deploy and score (default: the bank's, ca for slimda)")
    g.add_argument(
        "--calibration-images",
        type=int,
        default=d.calibration_images,
        help="target images for BN re-estimation",
    )
    g.add_argument(
        "--scoring-images",
        type=int,
        default=d.scoring_images,
        help="target images UPEM is measured on",
    )
    g.add_argument("--subset-seed", type=int, default=0, help="seed of the fixed target subsets")
    g.add_argument(
        "--batch-size", type=int, default=d.batch_size, help="images per forward pass when scoring"
    )
    g.add_argument(
        "--anchor", type=Path, help="anchor configuration file (default: the largest model)"
    )
    g.add_argument(
        "--no-bn-recal", action="store_true", help="skip BN re-estimation (for ablations)"
    )
    g.add_argument("--device", default="auto")
    g.add_argument("--data-root", help="data folder (default: the run's, then $SLIMDA_NAS_DATA)")


def register(sub) -> None:
    p = sub.add_parser("eval", help="MACs, UPEM and accuracy of configurations of a trained bank")
    p.add_argument("--run", required=True, type=Path, help="run folder (runs/NAME)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--config-file", type=Path, help="YAML/JSON mapping unit -> width")
    which.add_argument("--uniform", type=float, help="every unit at this width ratio")
    which.add_argument("--largest", action="store_true")
    which.add_argument("--smallest", action="store_true")
    which.add_argument(
        "--ranking",
        type=int,
        metavar="N",
        help="rank check: N configurations across the MACs range",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of --ranking's configurations")
    p.add_argument(
        "--budget",
        help="with --ranking N: N configurations just under each of these budgets "
        "(MACs in [0.6 B, B]: what a search at B chooses among), e.g. 1/16,1/64",
    )
    add_eval_options(p)
    p.set_defaults(handler=_run)


def build_evaluator(args: argparse.Namespace):
    """The run and its Evaluator from the scoring options."""
    from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
    from slimda_nas.space import load_config
    from slimda_nas.train.run import load_run

    run = load_run(args.run, device=args.device, data_root=args.data_root)
    anchor = load_config(args.anchor, run.space) if args.anchor else None
    settings = EvalSettings(
        calibration_images=args.calibration_images,
        scoring_images=args.scoring_images,
        subset_seed=args.subset_seed,
        batch_size=args.batch_size,
        head=args.head,
        metric=args.metric,
        recalibrate_bn=not args.no_bn_recal,
        anchor=anchor,
    )
    return run, Evaluator(run, settings)


def _run(args: argparse.Namespace) -> int:
    from slimda_nas.space import load_config

    console = Console()
    run, evaluator = build_evaluator(args)
    space = run.space
    if args.ranking is not None:
        return _ranking(args, run, evaluator, console)
    if args.budget is not None:
        raise ConfigError("--budget: only with --ranking N (N configurations of each budget)")
    if args.config_file:
        config, label = load_config(args.config_file, space), str(args.config_file)
    elif args.uniform is not None:
        if not 0 < args.uniform <= 1:
            raise ConfigError(f"--uniform: expected a width ratio in (0, 1], got {args.uniform}")
        config, label = space.uniform(args.uniform), f"uniform {args.uniform:g}"
    else:
        config, label = (
            (space.largest(), "largest") if args.largest else (space.smallest(), "smallest")
        )
    score = evaluator.score(config)
    acc = _accuracy(evaluator, config)
    anchor_macs = evaluator.anchor_macs
    t = Table(title=f"{run.run_dir}: {label} ({run.method}, {run.task}, head {evaluator.head})")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_row("MACs (thop)", f"{score.macs:,}  ({score.macs / anchor_macs:.4f} of anchor)")
    t.add_row("parameters", f"{score.params:,}")
    for m, v in score.upem.items():
        t.add_row(
            f"UPEM {m}" + (" (objective)" if m == evaluator.settings.metric else ""), f"{v:.5f}"
        )
    if acc is not None:
        t.add_row("accuracy, target test (ground truth: the search never sees it)", f"{acc:.2%}")
    t.add_row("seconds to score", f"{score.seconds:.3f}")
    console.print(t)
    console.print(
        f"subsets: {evaluator.subsets}; BN re-estimation {'on' if evaluator.settings.recalibrate_bn else 'OFF'}"
    )
    return 0


def _accuracy(evaluator, config) -> float | None:
    from slimda_nas.data import LabelAccessError

    try:
        return evaluator.accuracy(config)
    except LabelAccessError:
        return None


def _ranking(args, run, evaluator, console) -> int:
    from rich.progress import Progress

    from slimda_nas.evaluate.ranking import ranking_check, sample_across_macs, write_ranking

    if not 3 <= args.ranking <= 100_000:
        raise ConfigError(f"--ranking: expected 3 to 100,000 configurations, got {args.ranking}")
    if args.budget is not None:
        return _within_budgets(args, run, evaluator, console)
    configs = sample_across_macs(run.space, args.ranking, args.seed)
    with Progress(console=Console(stderr=True)) as progress:
        task = progress.add_task("scoring UPEM and accuracy", total=len(configs))
        result = ranking_check(evaluator, configs, lambda i: progress.update(task, completed=i))
    out = write_ranking(run.run_dir, result, evaluator.record())
    t = Table(title=f"score vs target accuracy over {len(configs)} configurations")
    for col in ("score", "Pearson", "Spearman", "Kendall"):
        t.add_column(col, justify="right")
    for name, (p, s, k) in result.by_score.items():
        label = "MACs alone" if name == "macs" else f"UPEM {name}"
        if name == result.metric:
            label += " (searched)"
        t.add_row(label, f"{p:.3f}", f"{s:.3f}", f"{k:.3f}")
    console.print(t)
    mean_s = sum(s.seconds for s in result.scores) / len(result.scores)
    console.print(
        f"correlations of -UPEM with accuracy; {mean_s:.3f} s per candidate (UPEM); written to {out}"
    )
    return 0


def _within_budgets(args, run, evaluator, console) -> int:
    """``--ranking N --budget B,...``: N configurations of each budget's band."""
    from rich.progress import Progress

    from slimda_nas.cost.budget import parse_budgets
    from slimda_nas.evaluate.within_budget import BAND_LOW, band_ranking, write_rankings

    anchor = evaluator.anchor_macs
    rankings = []
    with Progress(console=Console(stderr=True)) as progress:
        for budget in parse_budgets(args.budget):
            resolved = budget.resolve(anchor)
            task = progress.add_task(f"band under {budget}", total=args.ranking)
            rankings.append(
                band_ranking(
                    evaluator,
                    resolved,
                    args.ranking,
                    args.seed,
                    on_progress=lambda i, t=task: progress.update(t, completed=i),
                )
            )
    out = write_rankings(run.run_dir, rankings, evaluator.record())
    images = evaluator.subsets.scoring
    for r in rankings:
        rec = r.saved()
        table = rec.rows(min(images, max(rec.by_images)))
        t = Table(
            title=f"{r.budget} ({BAND_LOW:g}-1 x {r.budget.macs:,} MACs): {rec.n} configurations, "
            f"accuracy {min(r.accuracies):.2%}-{max(r.accuracies):.2%} (median "
            f"{rec.median_accuracy:.2%}), split-half ceiling {rec.ceiling:.2f}"
        )
        for col in ("score", "Spearman", "Kendall", "pick accuracy", "regret"):
            t.add_column(col, justify="right")
        for name, row in sorted(table.items(), key=lambda kv: -_nan0(kv[1].spearman)):
            label = "MACs alone" if name == "macs" else name
            if name == evaluator.settings.metric:
                label += " (searched)"
            t.add_row(
                label,
                f"{row.spearman:.3f}",
                f"{row.kendall:.3f}",
                f"{row.pick_accuracy:.2%}",
                f"{row.regret * 100:.2f} pt",
            )
        console.print(t)
    console.print(f"within-budget rankings written to {out}")
    return 0


def _nan0(v: float) -> float:
    return -2.0 if v != v else v
