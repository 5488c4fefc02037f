"""The training loop: checkpoints, bit-for-bit resume, refusals and divergence."""

from __future__ import annotations

import json

import pytest
import torch

from slimda_nas.errors import CheckpointError, TrainingDiverged
from slimda_nas.train import train_bank
from slimda_nas.train.checkpoint import load_checkpoint
from tests.conftest import tiny_run_config


def _weights(path):
    return load_checkpoint(path).model


@pytest.mark.parametrize("method", ["slimda", "symnet", "source_only"])
def test_each_method_trains_and_logs(tmp_path, tiny_task, method):
    cfg = tiny_run_config(tmp_path, tiny_task, method=method)
    result = train_bank(cfg, show_progress=False)
    assert result.iterations == 8 and result.checkpoint.exists()
    lines = [json.loads(x) for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "loss" in x]
    assert [x["iteration"] for x in steps] == [2, 4, 6, 8]
    assert all(k in steps[0] for k in ("lr", "lambda", "images_per_s"))
    expected_terms = {"slimda": "seed", "symnet": "feat_domain", "source_only": "src_ce"}[method]
    assert expected_terms in steps[0]
    evals = [x for x in lines if "eval" in x]
    assert set(evals[-1]["eval"]) == {"largest", "smallest"}
    state = load_checkpoint(result.checkpoint)
    assert state.method == method and state.iteration == 8


def test_resume_after_kill_reproduces_weights_exactly(tmp_path, tiny_task):
    full = tiny_run_config(tmp_path / "a", tiny_task)
    train_bank(full, show_progress=False)
    killed = tiny_run_config(tmp_path / "b", tiny_task)
    # Stops after iteration 5: the checkpoint on disk is from iteration 4; iteration 5 is redone.
    train_bank(killed, show_progress=False, stop_after=5)
    assert load_checkpoint(killed.run_dir / "checkpoint.pt").iteration == 4
    result = train_bank(killed, show_progress=False)
    assert result.resumed_from == 4
    a, b = _weights(full.run_dir / "checkpoint.pt"), _weights(killed.run_dir / "checkpoint.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [
        json.loads(x)["iteration"]
        for x in (killed.run_dir / "metrics.jsonl").read_text().splitlines()
        if "loss" in x
    ]
    assert steps == [2, 4, 6, 8]  # the redone step is logged once


def test_other_config_in_same_folder_is_refused(tmp_path, tiny_task):
    cfg = tiny_run_config(tmp_path, tiny_task, iterations=2)
    train_bank(cfg, show_progress=False)
    before = (cfg.run_dir / "checkpoint.pt").read_bytes()
    with pytest.raises(CheckpointError, match="different config .*'optimizer'"):
        train_bank(cfg.replace(optimizer={"lr": 0.5}), show_progress=False)
    with pytest.raises(CheckpointError, match="already holds a trained run"):
        train_bank(cfg, show_progress=False, resume=False)
    assert (cfg.run_dir / "checkpoint.pt").read_bytes() == before


def test_checkpoint_of_another_space_is_refused(tmp_path, tiny_task):
    cfg = tiny_run_config(tmp_path, tiny_task, iterations=2)
    train_bank(cfg, show_progress=False)
    with pytest.raises(CheckpointError, match="trained on search space .* not this one"):
        load_checkpoint(cfg.run_dir / "checkpoint.pt", space_hash="0" * 16)
    with pytest.raises(CheckpointError, match="for backbone 'digits_cnn', not 'resnet50'"):
        load_checkpoint(cfg.run_dir / "checkpoint.pt", backbone="resnet50")


def test_checkpoint_without_resume_state_is_refused(tmp_path, tiny_task):
    cfg = tiny_run_config(tmp_path, tiny_task, iterations=2)
    train_bank(cfg, show_progress=False)
    path = cfg.run_dir / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    del state["ranks"]
    torch.save(state, path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"no training state to resume \(ranks missing"):
        train_bank(cfg, show_progress=False)
    assert path.read_bytes() == before


def test_resume_flag_needs_a_checkpoint(tmp_path, tiny_task):
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        train_bank(tiny_run_config(tmp_path, tiny_task), show_progress=False, resume=True)


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_task):
    cfg = tiny_run_config(tmp_path, tiny_task, iterations=4)
    train_bank(cfg, show_progress=False, stop_after=2)
    good = (cfg.run_dir / "checkpoint.pt").read_bytes()
    # Same run, poisoned: the resumed run meets a NaN weight at iteration 3.
    state = torch.load(cfg.run_dir / "checkpoint.pt", weights_only=True)
    state["model"]["conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, cfg.run_dir / "checkpoint.pt")
    poisoned = (cfg.run_dir / "checkpoint.pt").read_bytes()
    with pytest.raises(TrainingDiverged, match="iteration 3: loss term .* is nan"):
        train_bank(cfg, show_progress=False)
    assert (cfg.run_dir / "checkpoint.pt").read_bytes() == poisoned != good
