"""Banks over training seeds: train K seeds of each task and method, then report the target
accuracy of the largest, the smallest, and the widest uniform-width model within 1/16 and 1/64
of the anchor's MACs, per bank and as mean, standard deviation, min and max over the seeds.

    python -m benchmarks.seed_spread --tasks usps_mnist,mnist_usps,mnist_mnistm \\
        --methods slimda,symnet,source_only --seeds 0,1,2 [--set distillation.temperature=1.0 --tag t1]

Each bank goes to RUNS/<task>_<method>[_<tag>]_s<seed> (a finished bank is reused, a killed one
resumes). Accuracy is measured on the whole target test split after BN re-estimation on 1,000
unlabelled target train images (the deployed models, as the budget table measures them).
Writes benchmarks/results/seeds[_<tag>].json (or --results NAME); --evaluate-only skips training; --head H measures
head H instead of the deployed one (results in seeds[_<tag>]_<H>.json).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

import slimda_nas as sn
from benchmarks import _common as bc

MODELS = ("largest", "smallest", "1/16", "1/64")


def train(task: str, method: str, seed: int, args) -> tuple[Path, float | None]:
    """Train (or resume, or reuse) one bank; the seconds it trained now (None if reused)."""
    name = bc.bank_name(task, method, seed, args.tag)
    cfg = bc.run_config(
        task,
        args.tiny,
        method=method,
        seed=seed,
        out=str(args.runs / name),
        data_root=args.data_root,
    ).replace(**bc.overrides(args.set))
    result = sn.train_bank(cfg, show_progress=False)
    if result.resumed_from >= cfg.iterations:
        return cfg.run_dir, None
    return cfg.run_dir, round(result.seconds, 1)


def evaluate(
    run_dir: Path, budgets=("1/16", "1/64"), settings: sn.EvalSettings | None = None
) -> dict[str, float]:
    """Accuracy of the largest, the smallest and the widest uniform model within each budget
    (the smallest where no uniform model fits)."""
    ev = sn.Evaluator(sn.load_run(run_dir), settings or sn.EvalSettings())
    space = ev.run.space
    configs = {"largest": space.largest(), "smallest": space.smallest()}
    for b in bc.anchor_budgets(ev, budgets):
        ratio = ev.cost.widest_uniform_ratio(b.macs)
        configs[b.text] = space.smallest() if ratio is None else space.uniform(ratio)
    accs = bc.ground_truth(ev, list(configs.values()))
    return dict(zip(configs, accs, strict=True))


def main(argv: Sequence[str] | None = None) -> None:
    p = bc.parser(__doc__)
    p.add_argument("--tasks", default="usps_mnist,mnist_usps,mnist_mnistm")
    p.add_argument("--methods", default="slimda,symnet,source_only")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--runs", type=Path, default=bc.REPO / "runs" / "seeds")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="run-config override for every bank (e.g. optimizer.lr=0.02)",
    )
    p.add_argument("--tag", help="names the variant (runs and results file)")
    p.add_argument("--data-root")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    p.add_argument("--evaluate-only", action="store_true")
    p.add_argument("--head", help="the head to measure (default: each bank's deployed head)")
    p.add_argument(
        "--results",
        help="results file name under benchmarks/results (default: seeds[_<tag>][_<head>].json)",
    )
    args = bc.parse(p, argv)
    if args.tiny is not None:
        args.tasks, args.methods, args.seeds = "tiny", "slimda", "0,1"
        args.runs = args.tiny / "banks"
    if args.threads:
        torch.set_num_threads(args.threads)
    suffix = "".join(f"_{x}" for x in (args.tag, args.head) if x)
    out = bc.results_dir(args) / (args.results or f"seeds{suffix}.json")
    meta = {"overrides": args.set, "machine": bc.machine()}
    settings = bc.eval_settings(args.tiny, head=args.head)
    for task in args.tasks.split(","):
        for method in args.methods.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                name = bc.bank_name(task, method, seed, args.tag)
                run_dir, seconds = (
                    (args.runs / name, None)
                    if args.evaluate_only
                    else train(task, method, seed, args)
                )
                bank = {
                    "task": task,
                    "method": method,
                    "seed": seed,
                    "seconds": seconds,
                    "accuracy": evaluate(run_dir, settings=settings),
                }
                results = record(out, name, bank, meta)
                print(f"{name}: {results['banks'][name]}", flush=True)
    show(results["summary"])


def record(out: Path, name: str, bank: dict, meta: dict) -> dict:
    """Add one bank to the results file, read afresh so that runs side by side (other tasks or
    methods) keep each other's banks; a reused bank keeps the seconds it was trained in."""
    results = bc.read_result(out, {"banks": {}})
    bank["seconds"] = bank["seconds"] or results["banks"].get(name, {}).get("seconds")
    results["banks"][name] = bank
    results.update(meta, summary=summarise(results["banks"]))
    bc.write_result(out, results)
    return results


def summarise(banks: dict) -> dict:
    groups: dict[str, list[dict]] = {}
    for b in banks.values():
        groups.setdefault(f"{b['task']}/{b['method']}", []).append(b)
    return {
        key: {
            "seeds": sorted(b["seed"] for b in group),
            "seconds": bc.describe([b["seconds"] for b in group if b.get("seconds")] or [0.0]),
            **{m: bc.describe([b["accuracy"][m] for b in group]) for m in MODELS},
        }
        for key, group in sorted(groups.items())
    }


def show(summary: dict) -> None:
    t = Table(title="target accuracy over training seeds: mean ± sd [min, max]")
    for col in ("task/method", "seeds", *MODELS):
        t.add_column(col)
    for key, s in summary.items():
        t.add_row(
            key,
            ",".join(map(str, s["seeds"])),
            *(
                f"{s[m]['mean']:.2%} ± {s[m]['sd']:.2%} [{s[m]['min']:.2%}, {s[m]['max']:.2%}]"
                for m in MODELS
            ),
        )
    Console().print(t)


if __name__ == "__main__":
    main()
