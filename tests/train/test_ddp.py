"""Two CPU processes under torchrun (gloo): same sampled models, identical weights on both ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from slimda_nas.train.checkpoint import load_checkpoint
from tests.conftest import REPO, tiny_run_config


def _torchrun(cfg, nproc=2, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        str(Path(__file__).with_name("ddp_worker.py")),
        json.dumps(cfg.to_dict()),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


def test_two_process_gloo_run_keeps_ranks_identical(tmp_path, tiny_task):
    cfg = tiny_run_config(tmp_path, tiny_task, iterations=6, eval_every=3)
    r = _torchrun(cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    w0 = torch.load(cfg.run_dir / "rank0.pt", weights_only=True)
    w1 = torch.load(cfg.run_dir / "rank1.pt", weights_only=True)
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    state = load_checkpoint(cfg.run_dir / "checkpoint.pt")
    assert state.world_size == 2 and state.iteration == 6
    ranks = state.ranks
    assert (
        len(ranks) == 2
        and ranks[0]["loaders"]["source"]["seed"] != ranks[1]["loaders"]["source"]["seed"]
    )
    # the run trained: rank 0's weights differ from the seeded initialisation
    from slimda_nas.bank import ModelBank
    from slimda_nas.methods import HEADS
    from slimda_nas.space import load_space

    torch.manual_seed(cfg.seed)
    init = ModelBank.build(load_space(cfg.space), 3, heads=HEADS).model.state_dict()
    assert not torch.equal(init["conv1.weight"], w0["conv1.weight"])
