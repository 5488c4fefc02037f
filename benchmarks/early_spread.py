"""Run-to-run spread of a bank early in training: the same task, method and seed trained several
times with different thread counts (so different floating-point rounding, nothing else), and at
other seeds, each stopped after iteration UNTIL of the full schedule (learning rate and lambda
are those of the full run). Reads the training log's evaluations (every 250 iterations, the
largest and smallest model on the log's fixed target subset).

    python benchmarks/early_spread.py --task mnist_mnistm --seeds 13 --threads 1,2 --until 1000 \\
        [--set distillation.ramp=true --tag ramp]

Runs go to RUNS/<task>_<method>[_<tag>]_s<seed>_t<threads> (a finished one is read again, a
killed one resumes with the same rounding: its thread count is in its name). Writes
benchmarks/results/early_spread[_<tag>].json; --summarise only reads what is there.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from seed_spread import bank_name, overrides  # this folder is on sys.path when run as a script

import slimda_nas as sn

REPO = Path(__file__).resolve().parents[1]


def curve(run_dir: Path) -> dict[int, dict]:
    """Iteration -> the training log's evaluation (largest / smallest, every trained head); {}
    before the run has a log."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["iteration"]: r["eval"] for r in rows if "eval" in r}


def train_until(task: str, method: str, seed: int, threads: int, args) -> Path:
    name = f"{bank_name(task, method, seed, args.tag)}_t{threads}"
    cfg = sn.load_run_config(
        task, method=method, seed=seed, out=str(args.runs / name), data_root=args.data_root
    ).replace(eval_every=args.eval_every, **overrides(args.set))
    if args.until not in curve(cfg.run_dir):
        torch.set_num_threads(threads)
        # a killed run resumes from its last checkpoint: train from there up to UNTIL
        start = sn.train_bank(cfg, show_progress=False, stop_after=0).iterations
        sn.train_bank(cfg, show_progress=False, stop_after=args.until - start)
    return cfg.run_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", default="mnist_mnistm")
    p.add_argument("--method", default="slimda")
    p.add_argument("--seeds", default="13")
    p.add_argument("--threads", default="1,2", help="thread counts: one run each per seed")
    p.add_argument("--until", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "early")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--head", default="ca", help="the head whose accuracy is reported")
    p.add_argument("--tag")
    p.add_argument("--data-root")
    p.add_argument("--summarise", action="store_true")
    args = p.parse_args()
    out = (
        REPO / "benchmarks" / "results" / f"early_spread{'_' + args.tag if args.tag else ''}.json"
    )
    results = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    results.update({"overrides": args.set, "until": args.until})
    if not args.summarise:
        for seed in (int(s) for s in args.seeds.split(",")):
            for threads in (int(t) for t in args.threads.split(",")):
                run_dir = train_until(args.task, args.method, seed, threads, args)
                results["runs"][run_dir.name] = {
                    "task": args.task,
                    "method": args.method,
                    "seed": seed,
                    "threads": threads,
                    "head": args.head,
                    "curve": {str(k): v for k, v in curve(run_dir).items() if k <= args.until},
                }
                out.write_text(json.dumps(results, indent=2))
    results["summary"] = summarise(results["runs"], args.until)
    out.write_text(json.dumps(results, indent=2))
    show(results)


def summarise(runs: dict, until: int) -> dict:
    """Mean, sd, min, max at ``until`` of the largest and smallest model (each run's head)."""
    out = {}
    for model in ("largest", "smallest"):
        values = [r["curve"][str(until)][model][r["head"]] for r in runs.values()]
        out[model] = {
            "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values),
            "max": max(values),
            "runs": len(values),
        }
    return out


def show(results: dict) -> None:
    until = results["until"]
    t = Table(title=f"accuracy at iteration {until} (training log subset)")
    for col in ("run", "seed", "threads", "head", "largest", "smallest"):
        t.add_column(col)
    for name, r in results["runs"].items():
        e = r["curve"][str(until)]
        t.add_row(
            name,
            str(r["seed"]),
            str(r["threads"]),
            r["head"],
            f"{e['largest'][r['head']]:.2%}",
            f"{e['smallest'][r['head']]:.2%}",
        )
    Console().print(t)
    Console().print(results["summary"])


if __name__ == "__main__":
    main()
