"""The paper's main table on one task: target accuracy under each budget for the model chosen by
UPEM search on the SlimDA bank, next to the same budget searched on the symnet and source_only
banks, the uniform-width model, the median of random feasible models and the full-width models.

    python -m benchmarks.budget_table --task usps_mnist [--trials 100] [--random 15]
    python -m benchmarks.budget_table --task usps_mnist --seeds 0,1,2 [--runs runs/seeds]

Without --seeds: the banks runs/<task>, runs/<task>_symnet, runs/<task>_source_only
(benchmarks.train_digits_banks); writes benchmarks/results/budgets_<task>.json. With --seeds:
the banks of benchmarks.seed_spread, one table per bank seed and mean ± sd over the seeds;
writes benchmarks/results/budgets_<task>_seeds.json. Each seed's table is kept in its slimda
bank's folder and reused, so `--seeds 0` and `--seeds 1` can run side by side before `--seeds 0,1,2`
gathers them.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

import slimda_nas as sn
from benchmarks import _common as bc

BUDGETS = ["1/2", "1/4", "1/8", "1/16", "1/32", "1/64"]


def budgets_for(ev: sn.Evaluator, texts: list[str]) -> list[bc.Budget]:
    """The budgets (fractions of the anchor's MACs), the smallest replaced by the smallest
    reachable fraction if needed."""
    fraction = ev.cost.macs(ev.run.space.smallest()) / ev.anchor_macs
    out = []
    for text, b in zip(texts, bc.anchor_budgets(ev, texts), strict=True):
        if b.fraction < fraction:
            smallest = f"{bc.format_fraction(fraction)} (smallest)"
            out.append(bc.Budget(smallest, fraction=fraction + 1e-9))
            break
        out.append(sn.parse_budget(text))
    return out


def searched(ev: sn.Evaluator, budgets: list[bc.Budget], trials: int, seed: int) -> list[dict]:
    result = sn.run_search(
        ev,
        sn.SearchOptions(
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


def random_feasible(ev: sn.Evaluator, limit: int, n: int, seed: int) -> list[float]:
    return bc.ground_truth(ev, bc.random_feasible(ev, limit, n, seed))


def budget_rows(
    banks: dict[str, Path],
    texts: list[str],
    trials: int,
    n_random: int,
    seed: int,
    settings: sn.EvalSettings,
) -> dict:
    """One table: per budget, the UPEM pick on each bank, the uniform model and random feasible
    models of the SlimDA bank; and the full-width accuracy of each bank."""
    evs = {m: sn.Evaluator(sn.load_run(d), settings) for m, d in banks.items()}
    budgets = budgets_for(evs["slimda"], texts)
    full = {m: ev.accuracy(ev.run.space.largest()) for m, ev in evs.items()}
    rows = {m: searched(ev, budgets, trials, seed) for m, ev in evs.items()}
    ev = evs["slimda"]
    table = []
    for i, b in enumerate(budgets):
        limit = b.macs(ev.anchor_macs)
        uni = ev.cost.widest_uniform_ratio(limit)
        rand = random_feasible(ev, limit, n_random, seed)
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
                else bc.ground_truth(ev, [ev.run.space.uniform(uni)])[0],
                "uniform_ratio": uni,
                "random_median": statistics.median(rand),
                "random_min": min(rand),
                "random_max": max(rand),
                "random_n": len(rand),
            }
        )
    return {"full_width": full, "rows": table, "choices": rows}


def seed_rows(
    banks: dict[str, Path],
    texts: list[str],
    trials: int,
    n_random: int,
    seed: int,
    settings: sn.EvalSettings,
) -> dict:
    """``budget_rows`` of one bank seed, kept beside the slimda bank: a finished seed is reused,
    so seeds can run as separate processes (one per core) and a killed table resumes."""
    kept = banks["slimda"] / f"budget_rows_t{trials}_r{n_random}_s{seed}.json"
    if kept.exists():
        return bc.read_result(kept, None)
    rows = budget_rows(banks, texts, trials, n_random, seed, settings)
    bc.write_result(kept, rows)
    return rows


COLUMNS = {
    "SlimDA + UPEM": "slimda_upem_search",
    "SymNet bank": "symnet_upem_search",
    "source-only bank": "source_only_upem_search",
    "uniform": "uniform",
    "random median": "random_median",
}


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2%}"


def show(title: str, table: dict, cell) -> None:
    """One row per budget and a full-width row; ``cell(row, key)`` formats one column."""
    t = Table(title=title)
    t.add_column("budget", justify="right")
    for col in COLUMNS:
        t.add_column(col, justify="right")
    for r in table["rows"]:
        t.add_row(r["budget"], *(cell(r, k) for k in COLUMNS.values()))
    full = {f"{m}_upem_search": v for m, v in table["full_width"].items()}
    t.add_row("full width", *(cell(full, k) if k in full else "" for k in COLUMNS.values()))
    Console().print(t)


def one_cell(row: dict, key: str) -> str:
    """A value of one bank seed; the random column with its [min, max]."""
    if key != "random_median":
        return pct(row[key])
    return f"{pct(row[key])} [{pct(row['random_min'])}, {pct(row['random_max'])}]"


def seeds_cell(row: dict, key: str) -> str:
    d = row[key]
    return "-" if d is None else f"{d['mean']:.2%} ± {d['sd']:.2%} [{d['spread']:.2%}]"


def over_seeds(per_seed: dict[int, dict]) -> dict:
    """Mean, sd, min and max over the bank seeds of every column, budget by budget (the budgets
    are the same for every seed: one space, one MACs counter)."""
    first = next(iter(per_seed.values()))
    rows = []
    for i, r in enumerate(first["rows"]):
        row = {"budget": r["budget"]}
        for key in COLUMNS.values():
            values = [s["rows"][i][key] for s in per_seed.values()]
            row[key] = None if None in values else bc.describe(values)
        rows.append(row)
    full = {
        m: bc.describe([s["full_width"][m] for s in per_seed.values()])
        for m in first["full_width"]
    }
    return {"rows": rows, "full_width": full}


def main(argv: Sequence[str] | None = None) -> None:
    p = bc.parser(__doc__)
    p.add_argument("--task", default="usps_mnist")
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--random", type=int, default=15, help="random feasible models per budget")
    p.add_argument("--seed", type=int, default=0, help="the search's and the random models' seed")
    p.add_argument("--seeds", help="bank seeds: the banks of benchmarks.seed_spread under --runs")
    p.add_argument("--runs", type=Path, default=Path("runs") / "seeds")
    p.add_argument("--slimda-tag", help="the slimda banks' seed_spread --tag (a config variant)")
    args = bc.parse(p, argv)
    methods = ("slimda", "symnet", "source_only")
    settings = bc.eval_settings(args.tiny)
    texts = BUDGETS[:2] if args.tiny else BUDGETS
    if args.tiny is not None:
        args.task, args.trials, args.random, args.seeds = "tiny", 3, 2, None
    if not args.seeds:
        banks = (
            {m: Path("runs") / bc.run_name(args.task, m) for m in methods}
            if args.tiny is None
            else bc.tiny_banks(args.tiny, methods)
        )
        result = budget_rows(banks, texts, args.trials, args.random, args.seed, settings)
        show(
            f"{args.task}: target accuracy per budget; TPE, {args.trials} UPEM evaluations",
            result,
            one_cell,
        )
        out = bc.results_dir(args) / f"budgets_{args.task}.json"
        payload = {"task": args.task, "trials": args.trials, "seed": args.seed, **result}
    else:
        seeds = [int(s) for s in args.seeds.split(",")]
        tag = {"slimda": args.slimda_tag}
        per_seed = {}
        for s in seeds:
            banks = {m: args.runs / bc.bank_name(args.task, m, s, tag.get(m)) for m in methods}
            per_seed[s] = seed_rows(banks, texts, args.trials, args.random, args.seed, settings)
            show(f"{args.task}, bank seed {s}: target accuracy per budget", per_seed[s], one_cell)
        summary = over_seeds(per_seed)
        show(f"{args.task}: mean ± sd [spread] over bank seeds {seeds}", summary, seeds_cell)
        out = bc.results_dir(args) / f"budgets_{args.task}_seeds.json"
        payload = {
            "task": args.task,
            "trials": args.trials,
            "search_seed": args.seed,
            "bank_seeds": seeds,
            "slimda_tag": args.slimda_tag,
            "summary": summary,
            "per_seed": {str(s): r for s, r in per_seed.items()},
        }
    bc.write_result(out, payload)
    print(f"written {out}")


if __name__ == "__main__":
    main()
