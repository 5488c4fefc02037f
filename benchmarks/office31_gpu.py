"""GPU benchmark: Office-31 amazon->webcam with ImageNet EfficientNet-Lite0 (any run config
with ``--config``; ``--device cpu --config usps_mnist`` is a quick dry run).

Measures (1) train step time for m = 1 and m = 4 sub-networks against the MACs-ideal ratio, in
fp32, bf16 and bf16 + channels_last; (2) target accuracy of the largest and smallest model
after training each method (source_only, symnet, slimda); (3) candidate-evaluation speed
(BN re-estimation + UPEM) and its growth with the number of scoring images; (4) if time is
left, per budget: the UPEM-best of feasible random models against their median and the
uniform-width model (no Optuna needed on the device). Results go to OUT/*.json as they are produced.

    python -m benchmarks.office31_gpu --data-root DATA --out OUT [--iterations 1000]
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch

import slimda_nas as sn
from benchmarks import _common as bc

T0 = time.time()
SETTINGS = (("fp32", False), ("bf16", False), ("bf16", True))


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"


def log(out: Path, name: str, obj) -> None:
    bc.write_result(out / f"{name}.json", obj)
    print(f"[{time.time() - T0:6.0f}s] {name}: {json.dumps(obj, default=str)[:600]}", flush=True)


def step_times(out: Path, cfg: sn.RunConfig, device: str, steps: int) -> None:
    timed = bc.time_steps(
        cfg, num_classes=31, device=device, steps=steps, warmup=5, settings=SETTINGS
    )
    log(out, "step_times", {"device": _device_name(device), "config": cfg.name, **timed})


def train_methods(out: Path, args) -> dict:
    runs = {}
    iterations = args.iterations
    for method in ("slimda",) if args.tiny else ("slimda", "source_only", "symnet"):
        cfg = bc.run_config(
            args.config,
            args.tiny,
            method=method,
            iterations=iterations,
            device=args.device,
            out=str(out.parent / "runs" / method),
            data_root=args.data_root,
            eval_every=iterations,
            checkpoint_every=iterations,
        )
        t = time.time()
        result = sn.train_bank(cfg, show_progress=False)
        runs[method] = {
            "seconds": time.time() - t,
            "iterations": iterations,
            "accuracy": result.accuracy,
            "deploy_head": cfg.deploy_head or bc.build_method(method).default_deploy_head,
            "run_dir": str(cfg.run_dir),
        }
        log(out, "train_methods", runs)
    return runs


def candidate_speed(out: Path, run_dir: str, args) -> None:
    run = sn.load_run(run_dir, device=args.device, data_root=args.data_root)
    sizes = (6,) if args.tiny else (100, 500, 2000)
    rows = bc.time_candidates(
        run,
        sizes,
        calibration_images=6 if args.tiny else 500,
        candidates=2 if args.tiny else 11,
        batch_size=250,
        on_row=lambda row: None,
    )
    ev = sn.Evaluator(run, bc.eval_settings(args.tiny, calibration_images=500, scoring_images=500))
    acc = {
        name: ev.accuracy(c)
        for name, c in (("largest", run.space.largest()), ("smallest", run.space.smallest()))
    }
    log(
        out,
        "candidate_speed",
        {"device": _device_name(args.device), "rows": rows, "accuracy_500_calibration": acc},
    )


def budgets(out: Path, run_dir: str, args, deadline: float) -> None:
    """Per budget: UPEM-best of ``draws`` feasible random models vs their median, and the
    uniform-width model (random search scored by UPEM; needs no Optuna on the device)."""
    draws = 3 if args.tiny else 24
    run = sn.load_run(run_dir, device=args.device, data_root=args.data_root)
    settings = dict(calibration_images=500, scoring_images=500, batch_size=250)
    ev = sn.Evaluator(run, bc.eval_settings(args.tiny, **settings))
    space, cost = run.space, ev.cost
    anchor = ev.anchor_macs
    smallest = cost.macs(space.smallest())
    largest_accuracy = ev.accuracy(space.largest())
    rows, points = [], []
    for label, frac in (
        ("1/2", 1 / 2),
        ("1/4", 1 / 4),
        ("1/8", 1 / 8),
        ("1/16", 1 / 16),
        ("smallest+5%", 1.05 * smallest / anchor),
    ):
        if time.time() > deadline or (args.tiny and rows):
            break
        limit = frac * anchor
        configs = bc.random_feasible(ev, int(limit), draws, seed=0)
        scored = []
        for c in configs:
            s = ev.score(c)
            scored.append((s.value, ev.accuracy(c), s.macs))
        points += scored
        best = min(scored)
        uniform = cost.widest_uniform_ratio(limit)
        rows.append(
            {
                "budget": label,
                "budget_macs": int(limit),
                "upem_best_accuracy": best[1],
                "upem_best_macs": best[2],
                "random_median_accuracy": statistics.median(a for _, a, _ in scored),
                "random_max_accuracy": max(a for _, a, _ in scored),
                "uniform_ratio": uniform,
                "uniform_accuracy": None
                if uniform is None
                else ev.accuracy(space.uniform(uniform)),
                "draws": draws,
            }
        )
        pearson, spearman, kendall = bc.correlations(
            [p[0] for p in points], [p[1] for p in points]
        )
        log(
            out,
            "budgets",
            {
                "rows": rows,
                "largest_accuracy": largest_accuracy,
                "correlations_all_points": {
                    "pearson": pearson,
                    "spearman": spearman,
                    "kendall": kendall,
                    "n": len(points),
                },
            },
        )


def main(argv: Sequence[str] | None = None) -> None:
    p = bc.parser(__doc__)
    p.add_argument("--data-root")
    p.add_argument("--out", type=Path, help="results folder (tiny: under the tiny folder)")
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument(
        "--time-budget", type=float, default=480, help="seconds; later stages are skipped past it"
    )
    p.add_argument("--device", default="cuda")
    p.add_argument("--config", default="office31_aw", help="a shipped config or a YAML path")
    p.add_argument("--steps", type=int, default=20, help="timed steps per setting")
    p.add_argument(
        "--stages", default="steps,train,speed,budgets", help="comma-separated subset to run"
    )
    args = bc.parse(p, argv)
    if args.tiny is not None:
        args.out, args.device, args.iterations, args.steps = args.tiny / "gpu", "cpu", 6, 2
    elif args.out is None or args.data_root is None:
        p.error("--out and --data-root are required (or --tiny)")
    args.out.mkdir(parents=True, exist_ok=True)
    stages = args.stages.split(",")
    if "steps" in stages:
        step_times(args.out, bc.run_config(args.config, args.tiny), args.device, args.steps)
    if "train" in stages:
        runs = train_methods(args.out, args)
        if "speed" in stages:
            candidate_speed(args.out, runs["slimda"]["run_dir"], args)
        if "budgets" in stages:
            budgets(args.out, runs["slimda"]["run_dir"], args, T0 + args.time_budget)


if __name__ == "__main__":
    main()
