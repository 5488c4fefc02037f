"""CPU speed figures: MACs evaluations/s, candidate evaluations/s against scoring images, train
step time for m = 1 and m = 4 against the MACs-ideal ratio, Optuna's own time per trial, and
search wall time with 1, 2 and 4 worker processes on one study.

    python benchmarks/speed.py --run runs/usps_mnist [--sections macs,candidates,steps,overhead,workers]

Run it on an otherwise idle machine; writes benchmarks/results/speed_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from slimda_nas._io import write_text
from slimda_nas.bank import ModelBank
from slimda_nas.evaluate.macs import CostModel, thop_profile
from slimda_nas.methods import HEADS, build_method
from slimda_nas.space import load_space
from slimda_nas.train.sandwich import sample_model_batch
from slimda_nas.train.step import BankStep

REPO = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def macs_speed() -> list[dict]:
    rows = []
    for name in ("digits_cnn", "resnet50", "efficientnet_lite0"):
        space = load_space(REPO / "search_spaces" / f"{name}.yaml")
        bank = ModelBank.build(space, 31)
        cost = CostModel(bank)
        rng = random.Random(0)
        configs = [space.sample(rng) for _ in range(200)]
        t = time.perf_counter()
        for c in configs:
            cost.macs(c)
        fast = len(configs) / (time.perf_counter() - t)
        n_thop = 20 if name == "digits_cnn" else 5
        t = time.perf_counter()
        for c in configs[:n_thop]:
            thop_profile(bank.materialize(c), space.input_shape)
        thop = n_thop / (time.perf_counter() - t)
        rows.append(
            {
                "space": name,
                "fast_path_per_s": fast,
                "thop_per_s": thop,
                "largest_macs": cost.macs(space.largest()),
                "smallest_macs": cost.macs(space.smallest()),
            }
        )
        print(rows[-1], flush=True)
    return rows


def candidate_speed(run_dir: Path) -> list[dict]:
    from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
    from slimda_nas.train import load_run

    run = load_run(run_dir, device="cpu")
    rows = []
    rng = random.Random(0)
    configs = [run.space.sample(rng) for _ in range(10)]
    for n in (100, 500, 2000):
        ev = Evaluator(run, EvalSettings(calibration_images=1000, scoring_images=n), cache=False)
        ev.score(configs[0])
        t = time.perf_counter()
        for c in configs:
            ev.score(c)
        sec = (time.perf_counter() - t) / len(configs)
        rows.append(
            {
                "calibration_images": 1000,
                "scoring_images": n,
                "seconds_per_candidate": sec,
                "candidates_per_s": 1 / sec,
            }
        )
        print(rows[-1], flush=True)
    return rows


def step_speed(config: Path, steps: int = 15) -> list[dict]:
    from slimda_nas.train.config import load_run_config

    cfg = load_run_config(config)
    space = load_space(cfg.space)
    torch.manual_seed(0)
    bank = ModelBank.build(space, 10, heads=HEADS)
    cost = CostModel(bank)
    largest = cost.macs(space.largest())
    model = bank.model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    n = cfg.batch_size
    xs, xt = torch.randn(n, *space.input_shape), torch.randn(n, *space.input_shape)
    ys = torch.randint(0, 10, (n,))
    step = BankStep(model, build_method("slimda"))
    rows = []
    for m in (1, 4):
        times, ideal = [], []
        for it in range(steps + 3):
            configs = sample_model_batch(space, m, 0, it)
            widths = [space.layer_widths(c) for c in configs]
            t = time.perf_counter()
            total, _ = step(xs, ys, xt, widths, 0.5)
            opt.zero_grad()
            total.backward()
            opt.step()
            if it >= 3:
                times.append(time.perf_counter() - t)
                ideal.append(sum(cost.macs(c) for c in configs) / largest)
        rows.append(
            {
                "m": m,
                "ms_per_step": 1000 * sum(times) / len(times),
                "macs_ideal_ratio": sum(ideal) / len(ideal),
                "batch": f"{n} source + {n} target",
            }
        )
    rows[1]["time_ratio_vs_m1"] = rows[1]["ms_per_step"] / rows[0]["ms_per_step"]
    print(rows, flush=True)
    return rows


def _search(run_copy: Path, extra: list[str]) -> float:
    cmd = [
        sys.executable,
        "-m",
        "slimda_nas",
        "search",
        "--run",
        str(run_copy),
        "--no-report",
        *extra,
    ]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    return time.perf_counter() - t


def _fresh_copy(run_dir: Path, tmp: Path, name: str) -> Path:
    dest = tmp / name
    shutil.copytree(
        run_dir,
        dest,
        ignore=shutil.ignore_patterns(
            "study.journal",
            "bench.journal",
            "scores-*",
            "search",
            "report",
            "export",
            "ground_truth.json",
        ),
    )
    return dest


def overhead(run_dir: Path, trials: int = 100) -> dict:
    """Optuna's own time per trial (ask, tell, storage) against the evaluation time."""
    import optuna

    from slimda_nas.search.record import evaluation_counts as counts
    from slimda_nas.search.storage import open_storage

    with tempfile.TemporaryDirectory() as tmp:
        run = _fresh_copy(run_dir, Path(tmp), "run")
        wall = _search(run, ["--budget", "1/16", "--sampler", "tpe", "--trials", str(trials)])
        storage = open_storage(None, run)
        study = optuna.load_study(
            study_name=optuna.get_all_study_names(storage)[0], storage=storage
        )
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        eval_s = sum(t.user_attrs.get("seconds", 0.0) for t in done)
        trial_s = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
        evaluations, _ = counts(done)
        row = {
            "trials": len(done),
            "evaluations": evaluations,
            "command_wall_s": wall,
            "evaluation_s": eval_s,
            "trial_s": trial_s,
            "optuna_and_macs_s_per_trial": (trial_s - eval_s) / len(done),
            "evaluation_s_per_evaluation": eval_s / max(1, evaluations),
            "between_trials_s_per_trial": (wall - trial_s) / len(done),
        }
    print(row, flush=True)
    return row


def workers(run_dir: Path, trials: int = 60) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in (1, 2, 4):
            run = _fresh_copy(run_dir, Path(tmp), f"run{k}")
            wall = _search(
                run,
                [
                    "--budget",
                    "1/8",
                    "--sampler",
                    "random",
                    "--trials",
                    str(trials),
                    "--workers",
                    str(k),
                ],
            )
            rows.append({"workers": k, "evaluations": trials, "wall_s": wall})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", type=Path, default=Path("runs/usps_mnist"))
    p.add_argument("--config", type=Path, default=REPO / "configs/usps_mnist.yaml")
    p.add_argument("--sections", default="macs,candidates,steps,overhead,workers")
    args = p.parse_args()
    torch.set_num_threads(2)
    out = REPO / "benchmarks/results" / "speed_cpu.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results.update(
        {
            "machine": cpu_name(),
            "cores": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d"),
            "torch": torch.__version__,
        }
    )
    sections = args.sections.split(",")
    if "macs" in sections:
        results["macs"] = macs_speed()
    if "candidates" in sections:
        results["candidates"] = candidate_speed(args.run)
    if "steps" in sections:
        results["steps"] = step_speed(args.config)
    if "overhead" in sections:
        results["overhead"] = overhead(args.run)
    if "workers" in sections:
        results["workers"] = workers(args.run)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, json.dumps(results, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
