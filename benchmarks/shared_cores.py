"""Threads on a shared machine: a digits training step (configs/usps_mnist.yaml: batch 64 per
domain, 4 models, separate-domain BN) and a candidate evaluation (BN re-estimated on 1,000
target images, 4,000 scored, batches of 500: EvalSettings' defaults) with N torch threads, each
setting in a fresh process (OpenMP reads its environment once).

    python -m benchmarks.shared_cores [--steps 6] [--settings 2,2:passive,1,auto]

Run it while another process holds one core (the situation measured); prints one JSON row
per setting and writes benchmarks/results/shared_cores.json. ``auto`` is slimda-nas's own thread
choice (slimda_nas/_threads.py); ``N:passive`` sets ``OMP_WAIT_POLICY=PASSIVE``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence

import torch

from benchmarks import _common as bc

_CLEARED = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "SLIMDA_NAS_THREADS")


def measure(setting: str, steps: int, batch: int, images: int) -> dict:
    """In this (fresh) process: seconds per training step and per candidate evaluation. Timed
    here rather than with ``bc.time_steps``/``bc.time_candidates``: the figures in
    docs/own-data.md are of this measurement (median step of m = 4 on random digits batches, a
    candidate evaluation on random images without a trained run)."""
    if setting == "auto":
        bc.apply_thread_policy(None)
    else:
        torch.set_num_threads(int(setting.split(":")[0]))
    torch.manual_seed(0)
    space = bc.sn.load_space(bc.sn.load_run_config("usps_mnist").space)
    bank = bc.sn.ModelBank.build(space, 10, heads=bc.HEADS)
    model = bank.model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    step = bc.BankStep(model, bc.build_method("slimda"), separate_domains=True)
    xs, xt = torch.randn(batch, *space.input_shape), torch.randn(batch, *space.input_shape)
    ys = torch.randint(0, 10, (batch,))
    times = []
    for it in range(steps + 1):  # the first step warms up
        widths = [space.layer_widths(c) for c in bc.sample_model_batch(space, 4, 0, it)]
        t = time.perf_counter()
        total, _ = step(xs, ys, xt, widths, 0.5)
        opt.zero_grad()
        total.backward()
        opt.step()
        if it:
            times.append(time.perf_counter() - t)
    target = torch.randn(images, *space.input_shape)
    calibration, scored = target[: images // 5], target[images // 5 :]
    chunk = max(1, images // 10)
    evals = []
    for k in range(2):
        bc.set_widths(model, space.layer_widths(space.sample(random.Random(k))))
        t = time.perf_counter()
        with torch.no_grad():
            bc.recalibrate_bn(model, calibration.split(chunk))
            model.eval()
            for b in scored.split(chunk):
                model(b)
            model.train()
        evals.append(time.perf_counter() - t)
    return {
        "setting": setting,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "train_s_per_step": sorted(times)[len(times) // 2],
        "candidate_eval_s": min(evals),
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = bc.parser(__doc__)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--settings", default="2,2:passive,1,auto")
    p.add_argument("--child", help=argparse.SUPPRESS)  # one setting, in this process
    args = bc.parse(p, argv)
    batch, images = (64, 5000) if args.tiny is None else (4, 20)
    if args.child:
        print(json.dumps(measure(args.child, args.steps, batch, images)))
        return
    steps = args.steps if args.tiny is None else 1
    settings = args.settings if args.tiny is None else "1,auto"
    rows = [{"loadavg": os.getloadavg(), "cores": bc.usable_cores(), "machine": bc.machine()}]
    print(json.dumps(rows[0]), flush=True)
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(bc.REPO), env.get("PYTHONPATH")]))
    for setting in settings.split(","):
        # auto: the policy's passive waiting, set here because the child imports torch (through
        # benchmarks._common) before it could set it itself
        passive = setting.endswith(":passive") or setting == "auto"
        run_env = {**env, "OMP_WAIT_POLICY": "PASSIVE"} if passive else env
        command = [sys.executable, "-m", "benchmarks.shared_cores", "--child", setting]
        command += ["--steps", str(steps)] + (
            [] if args.tiny is None else ["--tiny", str(args.tiny)]
        )
        out = subprocess.run(command, env=run_env, cwd=bc.REPO, capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"shared_cores: setting {setting!r} failed:\n{out.stderr.strip()}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    bc.write_result(bc.results_dir(args) / "shared_cores.json", rows)


if __name__ == "__main__":
    main()
