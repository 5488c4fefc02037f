"""Threads on a shared machine: a digits training step (configs/usps_mnist.yaml: batch 64 per
domain, 4 models, separate-domain BN) and a candidate evaluation (BN re-estimated on 1,000
target images, 4,000 scored, batches of 500: EvalSettings' defaults) with N torch threads, each
setting in a fresh process (OpenMP reads its environment once).

    python -m benchmarks.shared_cores [--steps 6] [--settings 2,2:passive,1,auto]

Run it while another process holds one core (the situation measured); prints one JSON row
per setting. ``auto`` is slimda-nas's own thread choice (slimda_nas/_threads.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, os, random, sys, time
steps = int(sys.argv[1]); setting = sys.argv[2]
if setting == "auto":
    from slimda_nas._threads import apply_thread_policy
    apply_thread_policy(None)
import torch
if setting != "auto":
    torch.set_num_threads(int(setting.split(":")[0]))
from slimda_nas.bank import ModelBank
from slimda_nas.methods import HEADS, build_method
from slimda_nas.slim.bn_recal import recalibrate_bn
from slimda_nas.slim.ops import set_widths
from slimda_nas.space import load_space, resolve_space_path
from slimda_nas.train.sandwich import sample_model_batch
from slimda_nas.train.step import BankStep
torch.manual_seed(0)
space = load_space(resolve_space_path("digits_cnn"))
bank = ModelBank.build(space, 10, heads=HEADS)
model = bank.model.train()
opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
step = BankStep(model, build_method("slimda"), separate_domains=True)
xs, xt = torch.randn(64, 3, 32, 32), torch.randn(64, 3, 32, 32)
ys = torch.randint(0, 10, (64,))
times = []
for it in range(steps + 1):
    widths = [space.layer_widths(c) for c in sample_model_batch(space, 4, 0, it)]
    t = time.perf_counter()
    total, _ = step(xs, ys, xt, widths, 0.5)
    opt.zero_grad(); total.backward(); opt.step()
    if it:
        times.append(time.perf_counter() - t)
images = torch.randn(5000, 3, 32, 32)
evals = []
for k in range(2):
    set_widths(model, space.layer_widths(space.sample(random.Random(k))))
    t = time.perf_counter()
    with torch.no_grad():
        recalibrate_bn(model, images[:1000].split(500))
        model.eval()
        for b in images[1000:].split(500):
            model(b)
        model.train()
    evals.append(time.perf_counter() - t)
print(json.dumps({
    "setting": setting, "threads": torch.get_num_threads(),
    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    "train_s_per_step": sorted(times)[len(times) // 2],
    "candidate_eval_s": min(evals),
}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--settings", default="2,2:passive,1,auto")
    args = p.parse_args()
    print(json.dumps({"loadavg": os.getloadavg(), "cores": len(os.sched_getaffinity(0))}))
    for setting in args.settings.split(","):
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "SLIMDA_NAS_THREADS"):
            env.pop(var, None)
        if setting.endswith(":passive"):
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(args.steps), setting],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        print(out.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
