"""How much history TPE should model: its cost per trial and what it finds, for several bounds
on the finished trials it reads (the last H, plus the best 25; slimda_nas.search.samplers).

    python benchmarks/tpe_history.py --history 500,200,100 --seeds 0,1,2 --trials 1500

The search runs as sampler_overhead.py runs it (the study worker, a journal file, the score
cache; the candidate's score a microsecond formula of its widths), so the overhead per trial
is timed alone, and the best score reached after n evaluations tells whether a shorter
history costs the search anything. Writes benchmarks/results/tpe_history.json.
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
from sampler_overhead import run_one  # this folder is on sys.path when run as a script

from slimda_nas._io import write_text
from slimda_nas.search import samplers

REPO = Path(__file__).resolve().parents[1]
MARKS = (100, 250, 500, 1000, 1500, 2000, 3000)


def best_after(scores: list[float], marks) -> dict[int, float]:
    out, best = {}, float("inf")
    for i, s in enumerate(scores, start=1):
        best = min(best, s)
        if i in marks:
            out[i] = best
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--space", default="resnet50")
    p.add_argument("--budget", default="1/4")
    p.add_argument("--history", default="500,200,100")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--trials", type=int, default=1500)
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = REPO / "benchmarks" / "results" / "tpe_history.json"
    results = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    shipped = samplers.TPE_HISTORY
    for h in (int(x) for x in args.history.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            samplers.TPE_HISTORY = h  # the search's TPE reads the bound at each proposal
            t0 = time.time()
            try:
                r = run_one(args.space, "tpe", args.trials, args.budget, seed, keep_scores=True)
            finally:
                samplers.TPE_HISTORY = shipped
            key = f"{args.space}|{args.budget}|H{h}|s{seed}"
            results["runs"][key] = {
                "history": h,
                "seed": seed,
                "seconds": time.time() - t0,
                "windows": r["windows"],
                "best_after_evaluations": best_after(r["scores"], MARKS),
            }
            write_text(out, json.dumps(results, indent=2))
            print(f"{key}: {time.time() - t0:.0f} s", flush=True)
    show(results, args.space, args.budget)


def show(results: dict, space: str, budget: str) -> None:
    runs = [r for k, r in results["runs"].items() if k.startswith(f"{space}|{budget}|")]
    table = Table(title=f"TPE history bound, {space} at {budget}: mean over seeds")
    table.add_column("history")
    table.add_column("seeds", justify="right")
    for m in (500, 1000, 1500):
        table.add_column(f"ms/trial @{m}", justify="right")
    for m in (100, 250, 500, 1000):
        table.add_column(f"best score after {m} evals", justify="right")
    for h in sorted({r["history"] for r in runs}, reverse=True):
        group = [r for r in runs if r["history"] == h]
        cells = []
        for m in (500, 1000, 1500):
            v = [
                w["overhead_ms_per_trial"] for r in group for w in r["windows"] if w["trials"] == m
            ]
            cells.append(f"{statistics.mean(v):.0f}" if v else "-")
        for m in (100, 250, 500, 1000):
            v = [
                r["best_after_evaluations"].get(str(m), r["best_after_evaluations"].get(m))
                for r in group
            ]
            v = [x for x in v if x is not None]
            cells.append(f"{statistics.mean(v):.5f}" if v else "-")
        table.add_row(str(h), str(len(group)), *cells)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
