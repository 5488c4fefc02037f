"""Train the digit banks the benchmarks compare: every method on USPS->MNIST and MNIST->MNIST-M.

    python -m benchmarks.train_digits_banks [--tasks usps_mnist,mnist_mnistm] [--methods slimda,symnet,source_only]

Each bank goes to runs/<task>_<method> (slimda: runs/<task>); a finished bank is skipped, a
killed one resumes. Prints a table of wall time and target accuracy (largest / smallest model);
writes benchmarks/results/digits_banks.json.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

import slimda_nas as sn
from benchmarks import _common as bc


def main(argv: Sequence[str] | None = None) -> None:
    p = bc.parser(__doc__)
    p.add_argument("--tasks", default="usps_mnist,mnist_mnistm")
    p.add_argument("--methods", default="slimda,symnet,source_only")
    args = bc.parse(p, argv)
    runs = bc.REPO / "runs" if args.tiny is None else args.tiny / "banks"
    out = bc.results_dir(args) / "digits_banks.json"
    results = bc.read_result(out, {})
    for task in args.tasks.split(","):
        for method in args.methods.split(","):
            name = bc.run_name(task, method)
            cfg = bc.run_config(task, args.tiny, method=method, name=name, out=str(runs / name))
            t = time.time()
            result = sn.train_bank(cfg, show_progress=args.tiny is None)
            if result.resumed_from < cfg.iterations:  # trained (or finished) now: record it
                results[name] = {
                    "task": cfg.task,
                    "method": method,
                    "iterations": cfg.iterations,
                    "seconds": round(time.time() - t, 1),
                    "accuracy": result.accuracy,
                }
                bc.write_result(out, results)
    t = Table(title="digit banks: target accuracy after BN re-estimation (deployed head)")
    for col in ("run", "method", "iterations", "wall s", "largest", "smallest"):
        t.add_column(col)
    for name, r in results.items():
        head = bc.build_method(r["method"]).default_deploy_head
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
