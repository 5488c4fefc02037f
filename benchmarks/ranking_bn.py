"""Why BN re-estimation is there: UPEM vs ground-truth accuracy over N configurations across the
MACs range, with and without re-estimating BN statistics on target images.

    python benchmarks/ranking_bn.py --run runs/usps_mnist --n 120 [--reuse]

Also correlates within MACs quartiles: a budgeted search only compares models of similar size,
where MACs alone say little. ``--reuse`` recomputes the summary from the last result file.

"Deployable accuracy" is the accuracy after BN re-estimation (what an exported model gets).
Writes benchmarks/results/ranking_bn_<run>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from slimda_nas._io import write_text
from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.evaluate.ranking import correlations, sample_across_macs
from slimda_nas.train import load_run

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", type=Path, default=Path("runs/usps_mnist"))
    p.add_argument("--n", type=int, default=120)
    p.add_argument("--scoring-images", type=int, default=1000)
    p.add_argument("--reuse", action="store_true", help="rows from the last result file")
    args = p.parse_args()
    path = REPO / "benchmarks/results" / f"ranking_bn_{args.run.name}.json"
    if args.reuse:
        last = json.loads(path.read_text())
        return report(args.run, last["rows"], last["seconds"], path)
    t0 = time.time()
    rows = measure(args)
    report(args.run, rows, time.time() - t0, path)


def measure(args) -> list[dict]:
    run = load_run(args.run)
    on = Evaluator(run, EvalSettings(scoring_images=args.scoring_images))
    off = Evaluator(run, EvalSettings(scoring_images=args.scoring_images, recalibrate_bn=False))
    rows = []
    for config in sample_across_macs(run.space, args.n, seed=0):
        s_on, s_off = on.score(config), off.score(config)
        rows.append(
            {
                "config": config,
                "macs": s_on.macs,
                "upem_recal": s_on.value,
                "upem_no_recal": s_off.value,
                "seconds_recal": s_on.seconds,
                "accuracy_recal": on.accuracy(config),
                "accuracy_no_recal": off.accuracy(config),
            }
        )
    return rows


def by_macs_quartile(rows: list[dict]) -> list[dict]:
    rows = sorted(rows, key=lambda r: r["macs"])
    out = []
    for q in range(4):
        part = rows[q * len(rows) // 4 : (q + 1) * len(rows) // 4]
        acc = [r["accuracy_recal"] for r in part]
        out.append(
            {
                "macs": [part[0]["macs"], part[-1]["macs"]],
                "accuracy": [min(acc), max(acc)],
                "upem": correlations([r["upem_recal"] for r in part], acc),
                "macs_alone": correlations([-r["macs"] for r in part], acc),
            }
        )
    return out


def report(run_dir: Path, rows: list[dict], seconds: float, path: Path) -> None:
    acc = [r["accuracy_recal"] for r in rows]
    out = {
        "run": str(run_dir),
        "n": len(rows),
        "seconds": seconds,
        "upem_recal_vs_deployable_accuracy": correlations([r["upem_recal"] for r in rows], acc),
        "upem_no_recal_vs_deployable_accuracy": correlations(
            [r["upem_no_recal"] for r in rows], acc
        ),
        "upem_no_recal_vs_no_recal_accuracy": correlations(
            [r["upem_no_recal"] for r in rows], [r["accuracy_no_recal"] for r in rows]
        ),
        "macs_vs_deployable_accuracy": correlations([-r["macs"] for r in rows], acc),
        "by_macs_quartile": by_macs_quartile(rows),
        "mean_accuracy_recal": sum(acc) / len(acc),
        "mean_accuracy_no_recal": sum(r["accuracy_no_recal"] for r in rows) / len(rows),
        "rows": rows,
    }
    for k, v in out.items():
        if k != "rows":
            print(k, v)
    write_text(path, json.dumps(out, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
