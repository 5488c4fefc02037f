"""Samplers compared on one bank: best UPEM and its ground-truth accuracy per budget, over seeds.

    python benchmarks/search_comparison.py --run runs/usps_mnist --budgets 1/4,1/16,1/64 \
        --samplers tpe,nsga2,random,uniform,greedy --seeds 0,1,2 --trials 100

Studies go to their own journal (RUN/bench.journal) so a user's studies are untouched; scores
are shared through the run's score cache, so re-running is cheap. Prints a table (mean and
min-max over seeds) and writes benchmarks/results/search_<run>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import optuna
from rich.console import Console
from rich.table import Table

from slimda_nas.evaluate.budget import parse_budgets
from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.search.runner import SearchOptions, run_search
from slimda_nas.search.storage import open_storage
from slimda_nas.train import load_run

REPO = Path(__file__).resolve().parents[1]


def _stat(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", type=Path, default=Path("runs/usps_mnist"))
    p.add_argument("--budgets", default="1/4,1/16,1/64")
    p.add_argument("--samplers", default="tpe,nsga2,random,uniform,greedy")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    run = load_run(args.run)
    ev = Evaluator(run, EvalSettings())
    storage = str(args.run / "bench.journal")
    rows = []
    for sampler in args.samplers.split(","):
        seeds = (
            [0] if sampler in ("uniform", "greedy") else [int(s) for s in args.seeds.split(",")]
        )
        for seed in seeds:
            t0 = time.perf_counter()
            result = run_search(
                ev,
                SearchOptions(
                    budgets=parse_budgets(args.budgets),
                    sampler=sampler,
                    evaluations=args.trials,
                    seed=seed,
                    storage=storage,
                    settings=ev.settings,
                ),
                save=False,
            )
            wall = time.perf_counter() - t0
            for s in result.studies:
                c = next(k for k in result.picks if k.point.study == s.name)
                rows.append(
                    {
                        "sampler": sampler,
                        "seed": seed,
                        "budget": c.budget.text,
                        "upem": c.point.upem["kl"],
                        "accuracy": c.accuracy,
                        "macs": c.point.macs,
                        "fraction": c.point.macs / c.budget.anchor_macs,
                        "evaluations": s.evaluations,
                        "trials": s.trials,
                        "feasible_fraction": s.feasible_fraction,
                        "study": s.name,
                        "search_seconds": s.seconds,
                    }
                )
            print(f"{sampler} seed {seed}: {wall:.0f} s", flush=True)
    summary = []
    for budget in args.budgets.split(","):
        for sampler in args.samplers.split(","):
            mine = [r for r in rows if r["budget"] == budget and r["sampler"] == sampler]
            summary.append(
                {
                    "budget": budget,
                    "sampler": sampler,
                    "upem": _stat([r["upem"] for r in mine]),
                    "accuracy": _stat([r["accuracy"] for r in mine]),
                    "evaluations": _stat([r["evaluations"] for r in mine]),
                    "feasible_fraction": None
                    if mine[0]["feasible_fraction"] is None
                    else _stat([r["feasible_fraction"] for r in mine]),
                }
            )
    t = Table(
        title=f"{args.run}: best UPEM (kl) and its ground-truth accuracy, {args.trials} UPEM evaluations"
    )
    for col in (
        "budget",
        "sampler",
        "seeds",
        "UPEM mean [min, max]",
        "accuracy mean [min, max]",
        "evals",
        "feasible",
    ):
        t.add_column(col)
    for s in summary:
        u, a = s["upem"], s["accuracy"]
        t.add_row(
            s["budget"],
            s["sampler"],
            str(u["n"]),
            f"{u['mean']:.4f} [{u['min']:.4f}, {u['max']:.4f}]",
            f"{a['mean']:.2%} [{a['min']:.2%}, {a['max']:.2%}]",
            f"{s['evaluations']['mean']:.0f}",
            "-" if s["feasible_fraction"] is None else f"{s['feasible_fraction']['mean']:.1%}",
        )
    Console().print(t)
    out = args.out or REPO / "benchmarks/results" / f"search_{args.run.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "run": str(args.run),
                "trials": args.trials,
                "rows": rows,
                "summary": summary,
                "studies": len(optuna.get_all_study_names(open_storage(storage, args.run))),
            },
            indent=2,
        )
    )
    print(f"written {out}")


if __name__ == "__main__":
    main()
