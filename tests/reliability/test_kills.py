"""SIGKILL at random points: training resumes to the uninterrupted weights; a search keeps every
finished trial and evaluates nothing twice; a killed DDP rank stops the run cleanly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from slimda_nas.search.storage import open_storage
from slimda_nas.train import TrainSummary
from slimda_nas.train.checkpoint import load_checkpoint
from tests.conftest import REPO, cli_env, cli_popen, copy_run, search_args, tiny_run_config
from tests.reliability.conftest import cli


def _popen(args):
    return cli_popen(args, stdout=subprocess.DEVNULL)


def _wait_for(predicate, timeout=120, poll=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


def _config_file(tmp_path, task, **changes) -> Path:
    cfg = tiny_run_config(tmp_path, task, **changes)
    path = tmp_path / "cfg.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return path


def _iteration(run_dir: Path) -> int:
    try:
        return load_checkpoint(run_dir / "checkpoint.pt").iteration
    except Exception:
        return -1


def test_training_survives_sigkill_at_random_points(tmp_path, tiny_task):
    rng = random.Random(1)
    ref = _config_file(
        tmp_path / "ref", tiny_task, iterations=12, checkpoint_every=2, eval_every=0
    )
    assert cli(["train", "--config", str(ref), "--quiet"]).returncode == 0
    cfg = _config_file(
        tmp_path / "killed", tiny_task, iterations=12, checkpoint_every=2, eval_every=0
    )
    run_dir = tmp_path / "killed" / "run"
    kills = 0
    for _ in range(3):
        p = _popen(["train", "--config", str(cfg), "--quiet"])
        start = max(_iteration(run_dir), 0)
        target = start + rng.choice([1, 2, 3])  # a random point after the next checkpoint
        if not _wait_for(
            lambda t=target, q=p: _iteration(run_dir) >= min(t, 11) or q.poll() is not None
        ):
            pytest.fail("training made no progress")
        time.sleep(rng.random() * 0.3)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
    assert kills >= 2
    r = cli(["train", "--config", str(cfg), "--quiet"])
    assert r.returncode == 0, r.stderr[-2000:]
    a = load_checkpoint(tmp_path / "ref" / "run" / "checkpoint.pt")
    b = load_checkpoint(run_dir / "checkpoint.pt")
    assert a.iteration == b.iteration == 12
    for k in a.model:
        assert torch.equal(a.model[k], b.model[k]), k
    for k in a.optimizer["state"]:
        assert torch.equal(
            a.optimizer["state"][k]["momentum_buffer"],
            b.optimizer["state"][k]["momentum_buffer"],
        )


def test_search_survives_sigkill_at_random_points(tiny_run_dir, tmp_path):
    run = copy_run(tiny_run_dir, tmp_path / "run")
    args = search_args(run, "--budget", "1/4", "--sampler", "tpe", "--trials", "16", "--seed", "2")
    rng = random.Random(4)

    def scored():
        files = list((run / "cache").glob("scores-*.jsonl"))
        return (
            [json.loads(x)["key"] for x in files[0].read_text().splitlines() if x.strip()]
            if files
            else []
        )

    for _ in range(3):
        target = len(scored()) + rng.choice([2, 3, 4])
        p = _popen(args)
        _wait_for(lambda t=target, q=p: len(scored()) >= t or q.poll() is not None, timeout=180)
        time.sleep(rng.random() * 0.2)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait()
    r = cli(args)
    assert r.returncode == 0, r.stderr[-2000:]
    keys = scored()
    assert len(keys) == len(set(keys)) == 16  # nothing evaluated twice, nothing lost
    study = optuna.load_study(
        study_name=optuna.get_all_study_names(open_storage(None, run))[0],
        storage=open_storage(None, run),
    )
    done = [
        t for t in study.trials if t.state.name == "COMPLETE" and t.user_attrs.get("evaluated")
    ]
    assert len(done) == 16 and {t.user_attrs["key"] for t in done} == set(keys)
    # same as an uninterrupted search with the same seed: TPE is deterministic given its history
    fresh = tmp_path / "fresh"
    copy_run(tiny_run_dir, fresh)
    r = cli([a if a != str(run) else str(fresh) for a in args])
    assert r.returncode == 0, r.stderr[-2000:]
    fresh_keys = [
        json.loads(x)["key"]
        for x in next((fresh / "cache").glob("scores-*.jsonl")).read_text().splitlines()
    ]
    assert sorted(fresh_keys) == sorted(keys)


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout
    return [int(x) for x in out.split()]


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def test_killed_ddp_rank_stops_cleanly_and_resumes(tmp_path, tiny_task):
    cfg = _config_file(tmp_path, tiny_task, iterations=10, checkpoint_every=2, eval_every=0)
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "slimda_nas",
        "train",
        "--config",
        str(cfg),
        "--quiet",
    ]
    p = subprocess.Popen(
        cmd, cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert _wait_for(lambda: _iteration(run_dir) >= 2, timeout=180), "no checkpoint"
    ranks = {_rank_of(c): c for c in _children(p.pid)}
    assert 1 in ranks, ranks
    os.kill(ranks[1], signal.SIGKILL)
    try:
        p.wait(timeout=120)  # the surviving rank must not hang
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("the run hung after a rank was killed")
    assert p.returncode != 0
    stopped_at = _iteration(run_dir)
    assert 2 <= stopped_at < 10
    r = subprocess.run(cmd, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state.iteration == 10 and state.world_size == 2
    assert TrainSummary.read(run_dir).resumed_from == stopped_at
