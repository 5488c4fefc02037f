"""Does averaging the late weights of a run steady its small models? Trains (or resumes) a run
like early_spread.py, keeping the bank's weights every EVERY iterations from FROM on
(RUN/snapshots/<iteration>.pt; stopping and resuming at those points leaves the run bit for bit
as it was), then measures on the whole target test split, after BN re-estimation (the deployed
model): the final weights, each kept snapshot, and the uniform average of the snapshots from
iteration A to the end, for every A of --average-from.

    python benchmarks/late_average.py --task mnist_mnistm --seeds 1,2 --threads 2 \\
        --set optimizer.lr=0.025 --set distillation.ramp=true --tag lr025ramp

Runs are early_spread.py's (RUNS/<task>_<method>[_<tag>]_s<seed>_t<threads>). Writes
benchmarks/results/late_average[_<tag>].json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from early_spread import curve, run_config  # this folder is on sys.path when run as a script
from rich.console import Console
from rich.table import Table

import slimda_nas as sn
from slimda_nas._io import atomic_write, write_text
from slimda_nas.train.averaging import WeightAverage
from slimda_nas.train.checkpoint import CHECKPOINT

REPO = Path(__file__).resolve().parents[1]
MODELS = ("largest", "smallest", "1/16")


def keep_snapshots(task: str, method: str, seed: int, threads: int, args) -> Path:
    """Train up to the end of the schedule, saving the weights at every snapshot iteration (one
    the run had passed before snapshots were kept is missing, and said so)."""
    # a stop writes no checkpoint of its own: checkpoint at every snapshot (not part of what is
    # trained, so the run resumes as before)
    cfg = run_config(task, method, seed, threads, args).replace(checkpoint_every=args.every)
    torch.set_num_threads(threads)
    for until in range(args.start, cfg.iterations + 1, args.every):
        snap = cfg.run_dir / "snapshots" / f"{until}.pt"
        if snap.exists():
            continue
        at = sn.train_bank(cfg, show_progress=False, stop_after=0).iterations
        if at > until:
            print(f"{cfg.run_dir.name}: no snapshot at {until} (the run was at {at})", flush=True)
            continue
        if at < until:
            sn.train_bank(cfg, show_progress=False, stop_after=until - at)
        state = torch.load(cfg.run_dir / CHECKPOINT, map_location="cpu", weights_only=False)
        assert state["iteration"] == until, (state["iteration"], until)
        atomic_write(snap, lambda f, m=state["model"]: torch.save(m, f))
    return cfg.run_dir


def averaged(snapshots: list[Path]) -> dict[str, torch.Tensor]:
    """The uniform average of the floating-point tensors (integers, e.g. BN's batch counters,
    are the last snapshot's; BN statistics are re-estimated before any measurement anyway)."""
    average = WeightAverage()
    for p in snapshots:
        average.update(torch.load(p, map_location="cpu"))
    return average.state


def measure(run_dir: Path, weights: dict | None, head: str | None) -> dict[str, float]:
    run = sn.load_run(run_dir)
    if weights is not None:
        run.bank.model.load_state_dict(weights)
    # Evaluator.accuracy, not ground_truth(): its cache is keyed by the checkpoint, and these
    # weights are not the checkpoint's
    ev = sn.Evaluator(run, sn.EvalSettings(head=head))
    space = run.space
    anchor = ev.cost.macs(space.largest())
    ratio = ev.cost.widest_uniform_ratio(sn.parse_budget("1/16").macs(anchor))
    configs = {
        "largest": space.largest(),
        "smallest": space.smallest(),
        "1/16": space.smallest() if ratio is None else space.uniform(ratio),
    }
    return {name: ev.accuracy(config) for name, config in configs.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", default="mnist_mnistm")
    p.add_argument("--method", default="slimda")
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--start", type=int, default=1500, help="first snapshot iteration (FROM)")
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--average-from", default="1500,2000,2500")
    p.add_argument("--heads", default="ca,ct")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "early")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--tag")
    p.add_argument("--data-root")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = (
        REPO / "benchmarks" / "results" / f"late_average{'_' + args.tag if args.tag else ''}.json"
    )
    results = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    results.update({"overrides": args.set, "start": args.start, "every": args.every})
    for seed in (int(s) for s in args.seeds.split(",")):
        run_dir = keep_snapshots(args.task, args.method, seed, args.threads, args)
        snaps = sorted((run_dir / "snapshots").glob("*.pt"), key=lambda q: int(q.stem))
        variants: dict[str, dict | None] = {"final": None}
        variants.update({f"at {q.stem}": torch.load(q, map_location="cpu") for q in snaps[:-1]})
        for a in (int(x) for x in args.average_from.split(",")):
            chosen = [q for q in snaps if int(q.stem) >= a]
            variants[f"average {a}-{snaps[-1].stem} ({len(chosen)})"] = averaged(chosen)
        rows = {}
        for head in args.heads.split(","):
            for label, weights in variants.items():
                rows[f"{head} {label}"] = measure(run_dir, weights, head)
                print(seed, head, label, rows[f"{head} {label}"], flush=True)
        results["runs"][run_dir.name] = {
            "seed": seed,
            "log": {str(k): v for k, v in curve(run_dir).items()},
            "accuracy": rows,
        }
        write_text(out, json.dumps(results, indent=2))
    show(results)


def show(results: dict) -> None:
    rows = next(iter(results["runs"].values()))["accuracy"]
    t = Table(title="target test accuracy after BN re-estimation: mean [min, max] over runs")
    t.add_column("head, weights")
    for m in MODELS:
        t.add_column(m)
    for key in rows:
        cells = []
        for m in MODELS:
            values = [
                r["accuracy"][key][m] for r in results["runs"].values() if key in r["accuracy"]
            ]
            cells.append(f"{statistics.fmean(values):.2%} [{min(values):.2%}, {max(values):.2%}]")
        t.add_row(key, *cells)
    Console().print(t)


if __name__ == "__main__":
    main()
