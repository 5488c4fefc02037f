"""Train the digit banks the benchmarks compare: every method on USPS->MNIST and MNIST->MNIST-M.

    python benchmarks/train_digits_banks.py [--tasks usps_mnist,mnist_mnistm] [--methods slimda,symnet,source_only]

Each bank goes to runs/<task>_<method> (slimda: runs/<task>); a finished bank is skipped, a
killed one resumes. Prints a table of wall time and target accuracy (largest / smallest model).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slimda_nas._io import write_text
from slimda_nas.train import train_bank
from slimda_nas.train.config import load_run_config

REPO = Path(__file__).resolve().parents[1]


def run_name(task: str, method: str) -> str:
    return task if method == "slimda" else f"{task}_{method}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tasks", default="usps_mnist,mnist_mnistm")
    p.add_argument("--methods", default="slimda,symnet,source_only")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/digits_banks.json")
    args = p.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for task in args.tasks.split(","):
        for method in args.methods.split(","):
            name = run_name(task, method)
            cfg = load_run_config(
                REPO / "configs" / f"{task}.yaml", method=method, name=name, out=f"runs/{name}"
            )
            t = time.time()
            result = train_bank(cfg)
            if result.resumed_from < cfg.iterations:  # trained (or finished) now: record it
                results[name] = {
                    "task": cfg.task,
                    "method": method,
                    "iterations": cfg.iterations,
                    "seconds": round(time.time() - t, 1),
                    "accuracy": result.accuracy,
                }
                args.out.parent.mkdir(parents=True, exist_ok=True)
                write_text(args.out, json.dumps(results, indent=2))
    t = Table(title="digit banks: target accuracy after BN re-estimation (deployed head)")
    for col in ("run", "method", "iterations", "wall s", "largest", "smallest"):
        t.add_column(col)
    for name, r in results.items():
        head = "ct" if r["method"] == "symnet" else "ca"
        acc = r["accuracy"]
        t.add_row(
            name,
            r["method"],
            str(r["iterations"]),
            str(r["seconds"]),
            f"{acc['largest'][head]:.2%}",
            f"{acc['smallest'][head]:.2%}",
        )
    Console().print(t)


if __name__ == "__main__":
    main()
