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

    python benchmarks/early_spread.py --compare base,lr025,ramp

sets the arms (variants; ``base`` is the run without --tag) side by side: a table of each arm's
mean, sd, min and max at UNTIL and the curves of every run, early_spread_arms.json / .png.
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
from slimda_nas._io import write_text

REPO = Path(__file__).resolve().parents[1]


def curve(run_dir: Path) -> dict[int, dict]:
    """Iteration -> the training log's evaluation (largest / smallest, every trained head); {}
    before the run has a log."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["iteration"]: r["eval"] for r in rows if "eval" in r}


def run_config(task: str, method: str, seed: int, threads: int, args) -> sn.RunConfig:
    """The run's config; its folder name carries the thread count (the rounding it trains with)."""
    name = f"{bank_name(task, method, seed, args.tag)}_t{threads}"
    return sn.load_run_config(
        task, method=method, seed=seed, out=str(args.runs / name), data_root=args.data_root
    ).replace(eval_every=args.eval_every, **overrides(args.set))


def train_until(task: str, method: str, seed: int, threads: int, args) -> Path:
    cfg = run_config(task, method, seed, threads, args)
    torch.set_num_threads(threads)
    # a killed run resumes from its last checkpoint (its log may reach further: not trusted)
    start = sn.train_bank(cfg, show_progress=False, stop_after=0).iterations
    if start < args.until:
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
    p.add_argument("--compare", metavar="TAGS", help="arms to set side by side (base = no tag)")
    args = p.parse_args()
    if args.tag == "arms":
        p.error("--tag arms: that name is --compare's output (early_spread_arms.json)")
    if args.compare:
        compare(args.compare.split(","), args.until)
        return
    out = results_path(args.tag)
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
                write_text(out, json.dumps(results, indent=2))
    results["summary"] = summarise(results["runs"], args.until)
    write_text(out, json.dumps(results, indent=2))
    show(results)


def results_path(tag: str | None) -> Path:
    return REPO / "benchmarks" / "results" / f"early_spread{'_' + tag if tag else ''}.json"


def summarise(runs: dict, until: int) -> dict:
    """Mean, sd, min, max at ``until`` of the largest and smallest model (each run's head)."""
    out = {}
    runs = {name: r for name, r in runs.items() if str(until) in r["curve"]}
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


def compare(tags: list[str], until: int) -> None:
    """Each arm's spread at ``until`` (a table and JSON) and every run's curve (a PNG)."""
    arms = {}
    for tag in tags:
        path = results_path(None if tag == "base" else tag)
        if not path.exists():
            raise SystemExit(f"--compare {tag}: no {path.relative_to(REPO)} (run that arm first)")
        arms[tag] = json.loads(path.read_text())["runs"]
    summary = {tag: summarise(runs, until) for tag, runs in arms.items()}
    out = results_path("arms")
    write_text(out, json.dumps({"until": until, "arms": summary}, indent=2))
    t = Table(title=f"arms at iteration {until}: mean ± sd \\[min, max] (training log subset)")
    for col in ("arm", "runs", "largest", "smallest"):
        t.add_column(col)
    for tag, s in summary.items():
        cells = [
            f"{m['mean']:.2%} ± {m['sd']:.2%} [{m['min']:.2%}, {m['max']:.2%}]"
            for m in (s["largest"], s["smallest"])
        ]
        t.add_row(tag, str(s["largest"]["runs"]), *cells)
    Console().print(t)
    plot_curves(arms, out.with_suffix(".png"))


def plot_curves(arms: dict, path: Path) -> None:
    """Accuracy of the largest and the smallest model against iterations, one line per run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(fig)
    for i, model in enumerate(("largest", "smallest")):
        ax = fig.add_subplot(1, 2, i + 1)
        for colour, (tag, runs) in enumerate(arms.items()):
            for n, r in enumerate(runs.values()):
                its = sorted(int(k) for k in r["curve"])
                acc = [100 * r["curve"][str(k)][model][r["head"]] for k in its]
                ax.plot(
                    its,
                    acc,
                    color=f"C{colour % 10}",
                    marker=".",
                    alpha=0.8,
                    label=tag if n == 0 else None,
                )
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{model} model, target accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")


if __name__ == "__main__":
    main()
