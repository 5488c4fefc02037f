"""Samplers compared on one bank at equal UPEM evaluations: best UPEM reached against
evaluations, the ground-truth accuracy of each sampler's pick, against the median and the best
of random feasible models of the same budget and the best configuration any search evaluated.

    python -m benchmarks.search_comparison --run runs/seeds/usps_mnist_slimda_s0 \\
        --budgets 1/16,1/64 --samplers tpe,nsga2,random,uniform,greedy --seeds 0,1,2 \\
        --trials 100 [--metric kl@ct] [--repair both] [--random 60] [--tag NAME]

Studies go to their own journal (RUN/bench-<tag>.journal), so a user's studies are untouched;
scores are shared through the run's score cache, so re-running is cheap. Writes
benchmarks/results/search_<run>[_<tag>].json and a PNG of the best-so-far curves.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

import slimda_nas as sn
from benchmarks import _common as bc

DETERMINISTIC = ("uniform", "greedy")


def _stat(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def curve(study, n: int) -> list[float | None]:
    """Best feasible UPEM after each of the study's first n evaluations (None: none yet)."""
    out = [None if math.isinf(v) else v for v in bc.best_so_far(study)]
    return (out + [out[-1]] * (n - len(out)))[:n] if out else [None] * n


def random_models(ev, budget, n: int, seed: int) -> list[float]:
    """Ground-truth accuracy of n distinct random feasible configurations of the budget."""
    space = ev.run.space
    band = bc.BandSampler(space, ev.cost)
    rng, seen = random.Random(seed), set()
    while len(seen) < n:
        x, _ = band.sample(rng, budget.macs)
        seen.add(x)
    return bc.ground_truth(ev, [space.from_indices(list(x)) for x in sorted(seen)])


def main(argv: Sequence[str] | None = None) -> None:
    p = bc.parser(__doc__)
    p.add_argument("--run", type=Path, help="the trained bank (not with --tiny)")
    p.add_argument("--budgets", default="1/16,1/64")
    p.add_argument("--samplers", default="tpe,nsga2,random,uniform,greedy")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--metric", help="the score to minimise (default: the package's)")
    p.add_argument("--repair", choices=("on", "off", "both"), default="on")
    p.add_argument("--random", type=int, default=60, help="random feasible models per budget")
    p.add_argument(
        "--best-evaluated",
        action="store_true",
        help="measure the accuracy of every configuration any search evaluated",
    )
    p.add_argument("--tag", default="")
    args = bc.parse(p, argv)
    if args.tiny is not None:
        args.run = bc.tiny_banks(args.tiny, ["slimda"])["slimda"]
        args.samplers, args.seeds, args.trials, args.random = "tpe,random,uniform", "0,1", 3, 2
        args.best_evaluated = True
    elif args.run is None:
        p.error("--run is required (or --tiny)")
    run = sn.load_run(args.run)
    ev = sn.Evaluator(run, bc.eval_settings(args.tiny, metric=args.metric))
    args.metric = ev.settings.metric
    anchor = ev.anchor_macs
    storage = str(args.run / f"bench{'-' + args.tag if args.tag else ''}.journal")
    repairs = {"on": [True], "off": [False], "both": [True, False]}[args.repair]
    rows = []
    for budget in sn.parse_budgets(args.budgets):
        resolved = budget.resolve(anchor)
        for sampler in args.samplers.split(","):
            seeds = [0] if sampler in DETERMINISTIC else [int(s) for s in args.seeds.split(",")]
            for repair in repairs if sampler not in DETERMINISTIC else [True]:
                for seed in seeds:
                    t0 = time.perf_counter()
                    opts = sn.SearchOptions(
                        budgets=[budget],
                        sampler=sampler,
                        evaluations=args.trials,
                        seed=seed,
                        storage=storage,
                        settings=ev.settings,
                        repair=repair,
                        study_name=f"{sampler}-{resolved.slug}-s{seed}-{'r' if repair else 'raw'}-{args.metric}",
                    )
                    result = sn.run_search(ev, opts, save=False)
                    study, pick = result.studies[0], result.picks[0]
                    rows.append(
                        {
                            "budget": budget.text,
                            "sampler": sampler,
                            "seed": seed,
                            "repair": repair,
                            "upem": pick.point.value,
                            "accuracy": pick.accuracy,
                            "macs": pick.point.macs,
                            "fraction": pick.point.macs / anchor,
                            "evaluations": study.evaluations,
                            "trials": study.trials,
                            "repairs": study.repairs,
                            "feasible_fraction": study.feasible_fraction,
                            "seconds": round(time.perf_counter() - t0, 1),
                            "curve": curve(study, args.trials),
                            "study": study.name,
                        }
                    )
                    print(
                        f"{budget.text} {sampler} seed {seed} repair={repair}: "
                        f"UPEM {pick.point.value:.4f} acc {pick.accuracy:.2%} "
                        f"({study.evaluations} evaluations, {rows[-1]['seconds']} s)",
                        flush=True,
                    )
    references = {}
    for budget in sn.parse_budgets(args.budgets):
        resolved = budget.resolve(anchor)
        accs = random_models(ev, resolved, args.random, seed=0) if args.random else []
        ref = {
            "random_median": statistics.median(accs) if accs else None,
            "random_best": max(accs) if accs else None,
            "random_n": len(accs),
        }
        if args.best_evaluated:
            studies = bc.read_studies(storage, args.run, run.space)
            configs = {
                p.key: p.config
                for s in studies
                if s.budget and s.budget.macs == resolved.macs
                for p in s.points
                if p.evaluated and p.feasible
            }
            accs_ev = bc.ground_truth(ev, list(configs.values()))
            ref.update({"best_evaluated": max(accs_ev), "evaluated_n": len(accs_ev)})
        references[budget.text] = ref
    summary = []
    for budget in args.budgets.split(","):
        for sampler in args.samplers.split(","):
            for repair in (True, False):
                mine = [
                    r
                    for r in rows
                    if r["budget"] == budget and r["sampler"] == sampler and r["repair"] == repair
                ]
                if not mine:
                    continue
                summary.append(
                    {
                        "budget": budget,
                        "sampler": sampler,
                        "repair": repair,
                        "upem": _stat([r["upem"] for r in mine]),
                        "accuracy": _stat([r["accuracy"] for r in mine]),
                        "evaluations": _stat([r["evaluations"] for r in mine]),
                        "trials": _stat([r["trials"] for r in mine]),
                        "feasible_fraction": None
                        if mine[0]["feasible_fraction"] is None
                        else _stat([r["feasible_fraction"] for r in mine]),
                        **references.get(budget, {}),
                    }
                )
    show(summary, args)
    name = f"search_{args.run.name}{'_' + args.tag if args.tag else ''}"
    out = bc.results_dir(args) / f"{name}.json"
    bc.write_result(
        out,
        {
            "run": str(args.run),
            "metric": args.metric,
            "trials": args.trials,
            "rows": rows,
            "summary": summary,
            "references": references,
        },
    )
    plot(rows, args, out.with_suffix(".png"))
    print(f"written {out}")


def show(summary: list[dict], args) -> None:
    t = Table(
        title=f"{args.run}: pick of each sampler, {args.trials} UPEM evaluations ({args.metric})"
    )
    for col in (
        "budget",
        "sampler",
        "repair",
        "best UPEM",
        "pick accuracy",
        "evals",
        "trials",
        "feasible",
        "random median / best",
    ):
        t.add_column(col)
    for s in summary:
        u, a = s["upem"], s["accuracy"]
        t.add_row(
            s["budget"],
            s["sampler"],
            "on" if s["repair"] else "off",
            f"{u['mean']:.4f} [{u['min']:.4f}, {u['max']:.4f}]",
            f"{a['mean']:.2%} [{a['min']:.2%}, {a['max']:.2%}]",
            f"{s['evaluations']['mean']:.0f}",
            f"{s['trials']['mean']:.0f}",
            "-" if s["feasible_fraction"] is None else f"{s['feasible_fraction']['mean']:.1%}",
            "-"
            if s.get("random_median") is None
            else f"{s['random_median']:.2%} / {s['random_best']:.2%}",
        )
    Console().print(t)


def plot(rows: list[dict], args, path: Path) -> None:
    """Best-so-far UPEM against evaluations: one panel per budget, mean over seeds."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    budgets = list(dict.fromkeys(r["budget"] for r in rows))
    fig = Figure(figsize=(5.5 * len(budgets), 4), layout="constrained")
    FigureCanvasAgg(fig)
    for i, budget in enumerate(budgets):
        ax = fig.add_subplot(1, len(budgets), i + 1)
        groups: dict[tuple, list] = {}
        for r in rows:
            if r["budget"] == budget:
                groups.setdefault((r["sampler"], r["repair"]), []).append(r["curve"])
        for (sampler, repair), curves in sorted(groups.items()):
            grid = np.array([[np.nan if v is None else v for v in c] for c in curves], float)
            x = np.arange(1, grid.shape[1] + 1)
            # before any seed has a feasible candidate the column is all NaN: left blank
            found = np.isfinite(grid).sum(0)
            mean = np.full(grid.shape[1], np.nan)
            np.divide(np.nansum(grid, 0), found, out=mean, where=found > 0)
            ax.plot(
                x,
                mean,
                ls="-" if repair else "--",
                label=f"{sampler}{'' if repair else ' (no repair)'}",
            )
        ax.set_yscale("log")
        ax.set_xlabel("UPEM evaluations")
        ax.set_ylabel(f"best feasible UPEM ({args.metric})")
        ax.set_title(f"budget {budget}, mean of {len(args.seeds.split(','))} seeds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100, bbox_inches="tight")


if __name__ == "__main__":
    main()
