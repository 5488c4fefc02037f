"""Workers on one GPU, simulated: do K workers hide the sampler's CPU time behind each other's
candidate evaluations? On a GPU machine a candidate costs 0.08-0.2 s of GPU time (BENCHMARKS.md
section 6) while TPE's proposal at a few thousand trials costs tens of ms of CPU time; one worker
alternates the two, K workers can propose while another's candidate runs.

    python benchmarks/gpu_queue.py --space resnet50 --budget 1/4 --prefill 1500 \\
        --evaluations 150 --gpu-seconds 0.1 --workers 1,2,3

The GPU is a lock shared by the worker processes (``fcntl.flock`` on a file) held for
``--gpu-seconds`` per candidate: one candidate on the GPU at a time, as with one device and no
MPS. Everything else is the search's own: the study worker, the journal file, TPE, MACs. The study
is first filled with ``--prefill`` trials (a microsecond score), so the samplers work at that
size. Writes benchmarks/results/gpu_queue[_LABEL].json: per K, wall time, evaluations per second, and
the GPU's busy fraction (evaluations x GPU seconds / wall time).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path

import optuna
from rich.console import Console
from rich.table import Table
from sampler_overhead import (  # this folder is on sys.path as a script
    fake_score,
    space_cost_budget,
)

from slimda_nas._io import write_text
from slimda_nas.search.score_cache import ScoreCache
from slimda_nas.search.storage import JOURNAL, open_storage
from slimda_nas.search.worker import StudySpec, StudyWorker

REPO = Path(__file__).resolve().parents[1]


def _worker(folder: str, args: dict, rank: int, ready, start, done) -> None:
    """One search process: a StudyWorker whose candidates wait for the shared 'GPU'."""
    torch_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, cost, budget = space_cost_budget(args["space"], args["budget"])
    score = fake_score(space)
    lock_path = Path(folder) / "gpu.lock"

    def on_gpu(config):
        with open(lock_path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                time.sleep(args["gpu_seconds"])
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return score(config)

    study = optuna.load_study(study_name="q", storage=open_storage(None, Path(folder)))
    spec = StudySpec(name="q", sampler="tpe", seed=0, evaluations=args["total"], budget=budget)
    cache = ScoreCache(Path(folder) / "scores.jsonl")
    worker = StudyWorker(study, spec, space, cost, on_gpu, cache, rank=rank)
    ready.put(rank)
    start.wait()
    worker.run()
    done.put(time.time())  # before the process's own teardown, which is not the search's


def torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _evaluated(folder: Path) -> int:
    study = optuna.load_study(study_name="q", storage=open_storage(None, folder))
    return sum(bool(t.user_attrs.get("evaluated")) for t in study.get_trials(deepcopy=False))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--space", default="resnet50")
    p.add_argument("--budget", default="1/4")
    p.add_argument("--prefill", type=int, default=1500, help="trials in the study before timing")
    p.add_argument("--evaluations", type=int, default=150, help="evaluations timed per K")
    p.add_argument("--gpu-seconds", type=float, default=0.1)
    p.add_argument("--workers", default="1,2,3")
    p.add_argument("--label", default="", help="names the results file: gpu_queue[_LABEL].json")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch_threads(1)
    out = (
        REPO / "benchmarks" / "results" / f"gpu_queue{'_' + args.label if args.label else ''}.json"
    )
    with tempfile.TemporaryDirectory() as tmp:
        filled = Path(tmp) / "filled"
        space, cost, budget = space_cost_budget(args.space, args.budget)
        study = optuna.create_study(study_name="q", storage=open_storage(None, filled))
        spec = StudySpec(name="q", sampler="tpe", seed=0, evaluations=10**9, budget=budget)
        cache = ScoreCache(filled / "scores.jsonl")
        StudyWorker(study, spec, space, cost, fake_score(space), cache).run(args.prefill)
        before = _evaluated(filled)
        rows = []
        for k in (int(x) for x in args.workers.split(",")):
            folder = Path(tmp) / f"k{k}"
            shutil.copytree(filled, folder)
            ctx = multiprocessing.get_context("spawn")
            ready, start, done = ctx.Queue(), ctx.Event(), ctx.Queue()
            job = {
                "space": args.space,
                "budget": args.budget,
                "gpu_seconds": args.gpu_seconds,
                "total": before + args.evaluations,
            }
            procs = [
                ctx.Process(target=_worker, args=(str(folder), job, r, ready, start, done))
                for r in range(k)
            ]
            for proc in procs:
                proc.start()
            for _ in procs:  # every process has built its cost model and opened the study
                ready.get(timeout=600)
            t0 = time.time()
            start.set()
            wall = max(done.get(timeout=3600) for _ in procs) - t0
            for proc in procs:
                proc.join()
            if any(proc.exitcode for proc in procs):
                raise SystemExit(f"a worker failed (exit codes {[p.exitcode for p in procs]})")
            n = _evaluated(folder) - before
            trials = len(
                optuna.load_study(study_name="q", storage=open_storage(None, folder)).trials
            )
            rows.append(
                {
                    "workers": k,
                    "evaluations": n,
                    "trials_after": trials,
                    "wall_s": wall,
                    "evaluations_per_s": n / wall,
                    "gpu_busy": n * args.gpu_seconds / wall,
                }
            )
            print(rows[-1], flush=True)
    payload = {"settings": vars(args), "journal": JOURNAL, "rows": rows}
    write_text(out, json.dumps(payload, indent=2))
    table = Table(title=f"{args.space} at {args.budget}, TPE, a {args.gpu_seconds} s 'GPU'")
    for col in ("workers", "evaluations", "wall (s)", "evaluations / s", "GPU busy"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["workers"]),
            str(r["evaluations"]),
            f"{r['wall_s']:.1f}",
            f"{r['evaluations_per_s']:.2f}",
            f"{r['gpu_busy']:.0%}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
