"""GPU benchmark: Office-31 amazon->webcam with ImageNet EfficientNet-Lite0 (any run config
with ``--config``; ``--device cpu --config configs/usps_mnist.yaml`` is a quick dry run).

Measures (1) train step time for m = 1 and m = 4 sub-networks against the MACs-ideal ratio, in
fp32, bf16 and bf16 + channels_last; (2) target accuracy of the largest and smallest model
after training each method (source_only, symnet, slimda); (3) candidate-evaluation speed
(BN re-estimation + UPEM) and its growth with the number of scoring images; (4) if time is
left, per budget: the UPEM-best of feasible random models against their median and the
uniform-width model (no Optuna needed on the device). Results go to OUT/*.json as they are produced.

    python benchmarks/office31_gpu.py --data-root DATA --out OUT [--iterations 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from slimda_nas._io import write_text
from slimda_nas.bank import ModelBank
from slimda_nas.evaluate.macs import CostModel
from slimda_nas.methods import HEADS, build_method
from slimda_nas.space import load_space
from slimda_nas.train import train_bank
from slimda_nas.train.config import load_run_config
from slimda_nas.train.sandwich import sample_model_batch
from slimda_nas.train.step import BankStep

REPO = Path(__file__).resolve().parents[1]
T0 = time.time()
DEVICE = "cuda"


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _device_name() -> str:
    return torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"


def log(out: Path, name: str, obj) -> None:
    write_text(out / f"{name}.json", json.dumps(obj, indent=2, default=str))
    print(f"[{time.time() - T0:6.0f}s] {name}: {json.dumps(obj, default=str)[:600]}", flush=True)


def step_times(out: Path, config: Path, steps: int = 20) -> None:
    cfg = load_run_config(config)
    space = load_space(cfg.space)
    torch.manual_seed(0)
    bank = ModelBank.build(space, 31, heads=HEADS, weights=cfg.weights)
    cost = CostModel(bank)
    largest = cost.macs(space.largest())
    model = bank.model.to(DEVICE).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    n = cfg.batch_size
    xs, xt = (
        torch.randn(n, *space.input_shape, device=DEVICE),
        torch.randn(n, *space.input_shape, device=DEVICE),
    )
    ys = torch.randint(0, 31, (n,), device=DEVICE)
    rows = []
    for precision, channels_last in (("fp32", False), ("bf16", False), ("bf16", True)):
        model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        step = BankStep(model, build_method("slimda"), channels_last)
        for m in (1, 4):
            ideal, times = [], []
            for it in range(steps + 5):
                configs = sample_model_batch(space, m, 0, it)
                widths = [space.layer_widths(c) for c in configs]
                _sync()
                t = time.perf_counter()
                with torch.autocast(
                    DEVICE, dtype=torch.bfloat16, enabled=precision == "bf16" and DEVICE == "cuda"
                ):
                    total, _ = step(xs, ys, xt, widths, 0.5)
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                _sync()
                if it >= 5:
                    times.append(time.perf_counter() - t)
                    ideal.append(sum(cost.macs(c) for c in configs) / largest)
            rows.append(
                {
                    "precision": precision,
                    "channels_last": channels_last,
                    "m": m,
                    "ms_per_step": 1000 * sum(times) / len(times),
                    "macs_ideal_ratio": sum(ideal) / len(ideal),
                }
            )
    for r in rows:  # relative to the m = 1 step in the same setting
        base = next(
            x
            for x in rows
            if x["precision"] == r["precision"]
            and x["channels_last"] == r["channels_last"]
            and x["m"] == 1
        )
        r["time_ratio_vs_m1"] = r["ms_per_step"] / base["ms_per_step"]
    log(
        out,
        "step_times",
        {
            "device": _device_name(),
            "batch": f"{n} source + {n} target, {space.input_size} px",
            "config": str(config),
            "largest_macs": largest,
            "rows": rows,
        },
    )


def train_methods(out: Path, config: Path, data_root: str, iterations: int) -> dict:
    runs = {}
    for method in ("slimda", "source_only", "symnet"):
        cfg = load_run_config(
            config,
            method=method,
            iterations=iterations,
            device=DEVICE,
            out=str(out.parent / "runs" / method),
            data_root=data_root,
            eval_every=iterations,
            checkpoint_every=iterations,
        )
        t = time.time()
        result = train_bank(cfg, show_progress=False)
        runs[method] = {
            "seconds": time.time() - t,
            "iterations": iterations,
            "accuracy": result.accuracy,
            "deploy_head": cfg.deploy_head or build_method(method).default_deploy_head,
            "run_dir": str(cfg.run_dir),
        }
        log(out, "train_methods", runs)
    return runs


def candidate_speed(out: Path, run_dir: str, data_root: str) -> None:
    from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
    from slimda_nas.train import load_run

    run = load_run(run_dir, device=DEVICE, data_root=data_root)
    rows = []
    rng = random.Random(0)
    configs = [run.space.sample(rng) for _ in range(12)]
    for n in (100, 500, 2000):
        ev = Evaluator(
            run,
            EvalSettings(calibration_images=500, scoring_images=n, batch_size=250),
            cache=False,
        )
        ev.score(configs[0])
        _sync()
        t = time.perf_counter()
        for c in configs[1:]:
            ev.score(c)
        _sync()
        rows.append(
            {
                "scoring_images": ev.subsets["scoring"],
                "calibration_images": ev.subsets["calibration"],
                "seconds_per_candidate": (time.perf_counter() - t) / (len(configs) - 1),
            }
        )
    ev = Evaluator(run, EvalSettings(calibration_images=500, scoring_images=500), cache=False)
    acc = {
        name: ev.accuracy(c)
        for name, c in (("largest", run.space.largest()), ("smallest", run.space.smallest()))
    }
    log(
        out,
        "candidate_speed",
        {"device": _device_name(), "rows": rows, "accuracy_500_calibration": acc},
    )


def budgets(out: Path, run_dir: str, data_root: str, deadline: float, draws: int = 24) -> None:
    """Per budget: UPEM-best of ``draws`` feasible random models vs their median, and the
    uniform-width model (random search scored by UPEM; needs no Optuna on the device)."""
    import statistics

    from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
    from slimda_nas.evaluate.ranking import correlations
    from slimda_nas.train import load_run

    run = load_run(run_dir, device=DEVICE, data_root=data_root)
    ev = Evaluator(run, EvalSettings(calibration_images=500, scoring_images=500, batch_size=250))
    space, cost = run.space, ev.cost
    largest = cost.macs(space.largest())
    smallest = cost.macs(space.smallest())
    largest_accuracy = ev.accuracy(space.largest())
    rows, points = [], []
    for label, frac in (
        ("1/2", 1 / 2),
        ("1/4", 1 / 4),
        ("1/8", 1 / 8),
        ("1/16", 1 / 16),
        ("smallest+5%", 1.05 * smallest / largest),
    ):
        if time.time() > deadline:
            break
        limit = frac * largest
        rng = random.Random(0)
        configs = []
        while len(configs) < draws:
            c = space.sample(rng)
            if cost.macs(c) <= limit:
                configs.append(c)
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
        pearson, spearman, kendall = correlations([p[0] for p in points], [p[1] for p in points])
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-root", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument(
        "--time-budget", type=float, default=480, help="seconds; later stages are skipped past it"
    )
    p.add_argument("--device", default="cuda")
    p.add_argument("--config", type=Path, default=REPO / "configs/office31_aw.yaml")
    p.add_argument("--steps", type=int, default=20, help="timed steps per setting")
    p.add_argument(
        "--stages", default="steps,train,speed,budgets", help="comma-separated subset to run"
    )
    args = p.parse_args()
    global DEVICE
    DEVICE = args.device
    args.out.mkdir(parents=True, exist_ok=True)
    stages = args.stages.split(",")
    if "steps" in stages:
        step_times(args.out, args.config, args.steps)
    if "train" in stages:
        runs = train_methods(args.out, args.config, args.data_root, args.iterations)
        if "speed" in stages:
            candidate_speed(args.out, runs["slimda"]["run_dir"], args.data_root)
        if "budgets" in stages:
            budgets(args.out, runs["slimda"]["run_dir"], args.data_root, T0 + args.time_budget)


if __name__ == "__main__":
    main()
