"""Search overhead of two checkouts of slimda-nas measured as pairs: for each (space, sampler),
``sampler_overhead.run_one`` of one checkout and right after it of the other (alternating which
goes first), so that both halves of a pair see the same load on a shared machine.

    python benchmarks/overhead_pairs.py --old ../slimda-nas-2b87e77 --new .
    python benchmarks/overhead_pairs.py --old ../before --new . --all --out overhead_paired_journal.json
    python benchmarks/overhead_pairs.py --plot --out overhead_paired_journal.json   # -> .png

Each half runs in a subprocess with PYTHONPATH set to its checkout (and that checkout's own
benchmarks/sampler_overhead.py). Writes benchmarks/results/overhead_paired.json: per
"space|sampler|budget|old|new" the run's windows, as sampler_overhead.py records them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAIRS = (
    ("digits_cnn", "nsga2", 3000, "1/16"),
    ("digits_cnn", "tpe", 3000, "1/16"),
    ("resnet50", "nsga2", 2000, "1/4"),
    ("resnet50", "tpe", 2000, "1/4"),
)
PAIRS_ALL = tuple(
    (space, sampler, 3000, budget)
    for space, budget in (("digits_cnn", "1/16"), ("resnet50", "1/4"))
    for sampler in ("tpe", "nsga2", "random")
)
RUN = (
    "import sys, json; sys.path.insert(0, {bench!r}); import sampler_overhead as so; "
    "print(json.dumps(so.run_one({space!r}, {sampler!r}, {trials}, {budget!r}, 0)))"
)


def run_half(checkout: Path, space: str, sampler: str, trials: int, budget: str) -> dict:
    code = RUN.format(
        bench=str(checkout / "benchmarks"),
        space=space,
        sampler=sampler,
        trials=trials,
        budget=budget,
    )
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    # run inside the checkout: ``python -c`` puts the current folder first on sys.path, so run
    # from another checkout a half would import that one's code, not its own
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--old", type=Path, help="the checkout to compare against (not for --plot)")
    p.add_argument("--new", type=Path, default=REPO)
    p.add_argument(
        "--all", action="store_true", help="TPE, NSGA-II and random, 3,000 trials on both spaces"
    )
    p.add_argument("--out", default="overhead_paired.json", help="under benchmarks/results")
    p.add_argument("--plot", action="store_true", help="only draw --out's curves (a PNG beside)")
    p.add_argument("--only", help="SPACE:SAMPLER, one pair measured again into --out")
    args = p.parse_args()
    if args.plot:
        plot(REPO / "benchmarks" / "results" / args.out)
        return
    if args.old is None:
        p.error("--old is required (except with --plot)")
    checkouts = {"old": args.old.resolve(), "new": args.new.resolve()}
    out_path = REPO / "benchmarks" / "results" / args.out
    results: dict = json.loads(out_path.read_text()) if args.only and out_path.exists() else {}
    pairs = PAIRS_ALL if args.all else PAIRS
    if args.only:
        pairs = [p for p in pairs if f"{p[0]}:{p[1]}" == args.only]
    for i, (space, sampler, trials, budget) in enumerate(pairs):
        for label in ("old", "new") if i % 2 == 0 else ("new", "old"):
            t0 = time.time()
            r = run_half(checkouts[label], space, sampler, trials, budget)
            results[f"{space}|{sampler}|{budget}|{label}"] = r
            at = {w["trials"]: w for w in r["windows"]}
            marks = {
                m: (
                    round(at[m]["overhead_ms_per_trial"]),
                    round(at[m]["overhead_ms_per_evaluation"]),
                )
                for m in (100, 1000, 2000, 3000)
                if m in at
            }
            print(
                f"{space} {sampler} {budget} {label} {time.time() - t0:.0f} s {marks}", flush=True
            )
            out_path.write_text(json.dumps(results))


def plot(path: Path) -> None:
    """Overhead per UPEM evaluation against trials, old (dashed) and new, one panel a space."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads(path.read_text())
    spaces = sorted({key.split("|")[0] for key in results})
    fig, axes = plt.subplots(1, len(spaces), figsize=(5 * len(spaces), 3.8), squeeze=False)
    colours = {"tpe": "tab:blue", "nsga2": "tab:orange", "random": "tab:green"}
    for ax, space in zip(axes[0], spaces, strict=True):
        for key, r in sorted(results.items()):
            s, sampler, budget, label = key.split("|")
            if s != space:
                continue
            ax.set_title(f"{space}, {budget}")
            x = [w["trials"] for w in r["windows"]]
            y = [w["overhead_ms_per_evaluation"] for w in r["windows"]]
            style = "--" if label == "old" else "-"
            ax.plot(x, y, style, color=colours.get(sampler, "grey"), label=f"{sampler} {label}")
        ax.set_xlabel("trial")
        ax.set_ylabel("overhead per UPEM evaluation (ms)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
