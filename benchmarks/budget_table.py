"""The paper's main table on one task: target accuracy under each budget for the model chosen by
UPEM search on the SlimDA bank, next to the same budget searched on the symnet and source_only
banks, the uniform-width model, the median of random feasible models and the full-width models.

    python benchmarks/budget_table.py --task usps_mnist [--trials 100] [--random 15]

Needs the banks runs/<task>, runs/<task>_symnet, runs/<task>_source_only
(benchmarks/train_digits_banks.py). Writes benchmarks/results/budgets_<task>.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table
from train_digits_banks import run_name  # this folder is on sys.path when run as a script

from slimda_nas.evaluate.budget import Budget, format_fraction, parse_budget
from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.evaluate.ground_truth import ground_truth
from slimda_nas.search.runner import SearchOptions, run_search
from slimda_nas.train import load_run

REPO = Path(__file__).resolve().parents[1]
BUDGETS = ["1/2", "1/4", "1/8", "1/16", "1/32", "1/64"]


def budgets_for(ev: Evaluator) -> list[Budget]:
    """The six budgets, the smallest replaced by the smallest reachable fraction if needed."""
    largest, smallest = ev.cost.macs(ev.run.space.largest()), ev.cost.macs(ev.run.space.smallest())
    out = []
    for text in BUDGETS:
        b = parse_budget(text)
        if b.macs(largest) < smallest:
            out.append(
                Budget(
                    f"{format_fraction(smallest / largest)} (smallest)",
                    fraction=smallest / largest + 1e-9,
                )
            )
            break
        out.append(b)
    return out


def searched(ev: Evaluator, budgets: list[Budget], trials: int, seed: int) -> list[dict]:
    result = run_search(
        ev,
        SearchOptions(
            budgets=budgets,
            sampler="tpe",
            evaluations=trials,
            seed=seed,
            storage=str(ev.run.run_dir / "bench.journal"),
            settings=ev.settings,
        ),
        save=False,
    )
    return [k.to_dict() for k in result.picks]


def random_feasible(ev: Evaluator, budget: Budget, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    limit = budget.macs(ev.cost.macs(ev.run.space.largest()))
    configs = []
    while len(configs) < n:
        c = ev.run.space.sample(rng)
        if ev.cost.macs(c) <= limit:
            configs.append(c)
    return ground_truth(ev, configs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--task", default="usps_mnist")
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--random", type=int, default=15, help="random feasible models per budget")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    banks = {m: Path("runs") / run_name(args.task, m) for m in ("slimda", "symnet", "source_only")}
    evs = {m: Evaluator(load_run(d), EvalSettings()) for m, d in banks.items()}
    budgets = budgets_for(evs["slimda"])
    full = {m: ev.accuracy(ev.run.space.largest()) for m, ev in evs.items()}
    rows = {m: searched(ev, budgets, args.trials, args.seed) for m, ev in evs.items()}
    ev = evs["slimda"]
    table = []
    for i, b in enumerate(budgets):
        limit = b.macs(ev.cost.macs(ev.run.space.largest()))
        uni = ev.cost.widest_uniform_ratio(limit)
        rand = random_feasible(ev, b, args.random, args.seed)
        table.append(
            {
                "budget": b.text,
                "budget_macs": limit,
                "slimda_upem_search": rows["slimda"][i]["accuracy"],
                "slimda_macs": rows["slimda"][i]["macs"],
                "symnet_upem_search": rows["symnet"][i]["accuracy"],
                "source_only_upem_search": rows["source_only"][i]["accuracy"],
                "uniform": None
                if uni is None
                else ground_truth(ev, [ev.run.space.uniform(uni)])[0],
                "uniform_ratio": uni,
                "random_median": statistics.median(rand),
                "random_min": min(rand),
                "random_max": max(rand),
                "random_n": len(rand),
            }
        )
    t = Table(
        title=f"{args.task}: target accuracy (ground truth) per budget; TPE, {args.trials} UPEM evaluations"
    )
    for col in (
        "budget",
        "SlimDA + UPEM",
        "SymNet bank",
        "source-only bank",
        "uniform",
        "random median [min, max]",
    ):
        t.add_column(col, justify="right")
    pct = lambda v: "-" if v is None else f"{v:.2%}"  # noqa: E731
    for r in table:
        t.add_row(
            r["budget"],
            pct(r["slimda_upem_search"]),
            pct(r["symnet_upem_search"]),
            pct(r["source_only_upem_search"]),
            pct(r["uniform"]),
            f"{pct(r['random_median'])} [{pct(r['random_min'])}, {pct(r['random_max'])}]",
        )
    t.add_row(
        "full width", pct(full["slimda"]), pct(full["symnet"]), pct(full["source_only"]), "", ""
    )
    Console().print(t)
    out = REPO / "benchmarks/results" / f"budgets_{args.task}.json"
    out.write_text(
        json.dumps(
            {
                "task": args.task,
                "trials": args.trials,
                "seed": args.seed,
                "full_width": full,
                "rows": table,
                "choices": rows,
            },
            indent=2,
        )
    )
    print(f"written {out}")


if __name__ == "__main__":
    main()
