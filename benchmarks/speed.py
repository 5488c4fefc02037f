"""CPU speed figures: MACs evaluations/s, candidate evaluations/s against scoring images, train
step time for m = 1 and m = 4 against the MACs-ideal ratio, Optuna's own time per trial, and
search wall time with 1, 2 and 4 worker processes on one study.

    python -m benchmarks.speed --run runs/usps_mnist [--sections macs,candidates,steps,overhead,workers]

Run it on an otherwise idle machine; writes benchmarks/results/speed_cpu.json.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import optuna
import torch

import slimda_nas as sn
from benchmarks import _common as bc


def macs_speed(spaces: Sequence[str], n: int) -> list[dict]:
    rows = []
    for name in spaces:
        space = sn.load_space(bc.REPO / "search_spaces" / f"{name}.yaml")
        bank = sn.ModelBank.build(space, 31)
        cost = bc.CostModel(bank)
        rng = random.Random(0)
        configs = [space.sample(rng) for _ in range(n)]
        t = time.perf_counter()
        for c in configs:
            cost.macs(c)
        fast = len(configs) / (time.perf_counter() - t)
        n_thop = min(n, 20 if name == "digits_cnn" else 5)
        t = time.perf_counter()
        for c in configs[:n_thop]:
            bc.thop_profile(bank.materialize(c), space.input_shape)
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


def _search(run_copy: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "slimda_nas", "search", "--run", str(run_copy), "--no-report"]
    t = time.perf_counter()
    subprocess.run([*cmd, *extra], check=True, capture_output=True, cwd=bc.REPO)
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


def overhead(run_dir: Path, trials: int) -> dict:
    """Optuna's own time per trial (ask, tell, storage) against the evaluation time."""
    with tempfile.TemporaryDirectory() as tmp:
        run = _fresh_copy(run_dir, Path(tmp), "run")
        wall = _search(run, ["--budget", "1/16", "--sampler", "tpe", "--trials", str(trials)])
        storage = bc.open_storage(None, run)
        study = optuna.load_study(
            study_name=optuna.get_all_study_names(storage)[0], storage=storage
        )
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        records = [bc.trial_record(t) for t in done]
        eval_s = sum(r.seconds or 0.0 for r in records if r is not None)
        trial_s = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
        evaluations, _ = bc.evaluation_counts(done)
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


def workers(run_dir: Path, trials: int, counts: Sequence[int]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in counts:
            run = _fresh_copy(run_dir, Path(tmp), f"run{k}")
            extra = ["--budget", "1/8", "--sampler", "random", "--trials", str(trials)]
            wall = _search(run, [*extra, "--workers", str(k)])
            rows.append({"workers": k, "evaluations": trials, "wall_s": wall})
            print(rows[-1], flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    p = bc.parser(__doc__)
    p.add_argument("--run", type=Path, default=Path("runs/usps_mnist"))
    p.add_argument("--config", default="usps_mnist", help="a run config: its space is timed")
    p.add_argument("--sections", default="macs,candidates,steps,overhead,workers")
    args = bc.parse(p, argv)
    tiny = args.tiny is not None
    if tiny:
        args.run = bc.tiny_banks(args.tiny, ["slimda"])["slimda"]
    else:
        torch.set_num_threads(2)
    out = bc.results_dir(args) / "speed_cpu.json"
    results = bc.read_result(out, {})
    machine = bc.machine()
    results.update(
        {
            "machine": machine["cpu"],
            "cores": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d"),
            "torch": torch.__version__,
        }
    )
    sections = args.sections.split(",")
    if "macs" in sections:
        spaces = ("digits_cnn",) if tiny else ("digits_cnn", "resnet50", "efficientnet_lite0")
        results["macs"] = macs_speed(spaces, 3 if tiny else 200)
    if "candidates" in sections:
        run = sn.load_run(args.run, device="cpu")
        sizes, cal = ((6,), 6) if tiny else ((100, 500, 2000), 1000)
        results["candidates"] = bc.time_candidates(
            run, sizes, calibration_images=cal, candidates=2 if tiny else 10
        )
    if "steps" in sections:
        cfg = bc.run_config(args.config, args.tiny)
        steps = bc.time_steps(
            cfg, num_classes=10, steps=2 if tiny else 15, warmup=1 if tiny else 3
        )
        results["steps"] = steps["rows"]
        print(steps, flush=True)
    if "overhead" in sections:
        results["overhead"] = overhead(args.run, 3 if tiny else 100)
    if "workers" in sections:
        results["workers"] = workers(args.run, 3 if tiny else 60, (1,) if tiny else (1, 2, 4))
    bc.write_result(out, results)
    print(f"written {out}")


if __name__ == "__main__":
    main()
