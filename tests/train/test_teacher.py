"""The teacher stage and channel ordering in training: they run after adaptation on a tiny
config, resume bit for bit after a kill (inside the stage too, where the cached targets are
read back), and their options are checked like every run-config field."""

from __future__ import annotations

import json

import pytest
import torch

from slimda_nas.errors import CheckpointError, ConfigError
from slimda_nas.train import train_bank
from slimda_nas.train.checkpoint import load_checkpoint
from slimda_nas.train.teacher import CACHE
from tests.conftest import tiny_run_config

STAGED = {
    "models_per_step": 1,  # adaptation trains the largest only: ordering waits for the stage
    "teacher": {"iterations": 4, "models_per_step": 3},
    "ordering": {"criterion": "l1_next"},
    "shrinking": {"stages": 1, "fraction": 0.5},
}


def _steps(cfg):
    lines = (cfg.run_dir / "metrics.jsonl").read_text().splitlines()
    return [x for x in map(json.loads, lines) if "loss" in x]


def test_the_stage_runs_after_adaptation_and_is_logged(tmp_path, tiny_task):
    cfg = tiny_run_config(tmp_path, tiny_task, iterations=4, log_every=1).replace(**STAGED)
    assert cfg.ordering_iteration == cfg.adaptation_end == 4
    result = train_bank(cfg, show_progress=False)
    assert result.iterations == cfg.total_iterations == 8
    steps = _steps(cfg)
    assert [x["phase"] for x in steps] == ["adaptation"] * 4 + ["teacher"] * 4
    assert all(x["teacher_kd"] > 0 and x["teacher_features"] > 0 for x in steps[4:])
    assert not any(k.startswith("largest_") for x in steps for k in x)
    assert all(x["teacher_ce"] > 0 for x in steps[4:])
    cache = torch.load(cfg.run_dir / CACHE, weights_only=True)
    n_views = cache["logits"]["source"].shape[0]
    assert n_views % 2 == 0 and cache["logits"]["source"].shape[1] == 3  # views x heads


def test_the_largest_keeps_adapting_where_asked(tmp_path, tiny_task):
    """``teacher.adaptation``: the largest model learns the run's method (SymNet's terms and
    SEED's), the narrower ones the cache (the stage's run at 0 logs no such terms: the test
    above). The same config at 0 is another training."""
    staged = {**STAGED, "teacher": {**STAGED["teacher"], "adaptation": 1.0}}
    cfg = tiny_run_config(tmp_path / "a", tiny_task, iterations=4, log_every=1).replace(**staged)
    assert cfg.training_hash() != cfg.replace(teacher={"adaptation": 0.0}).training_hash()
    train_bank(cfg, show_progress=False)
    stage = _steps(cfg)[4:]
    assert len(stage) == 4 and all(x["phase"] == "teacher" for x in stage)
    adapted = {k for k in stage[0] if k.startswith("largest_")}
    assert {"largest_cls_ce", "largest_feat_domain", "largest_seed"} <= adapted, sorted(stage[0])
    assert all(x["largest_cls_ce"] > 0 and x["teacher_kd"] > 0 for x in stage)


@pytest.mark.parametrize("adaptation", [0.0, 1.0], ids=["cache", "adapting"])
def test_a_killed_stage_resumes_bit_for_bit(tmp_path, tiny_task, adaptation):
    staged = {**STAGED, "teacher": {**STAGED["teacher"], "adaptation": adaptation}}
    full = tiny_run_config(tmp_path / "a", tiny_task, iterations=4).replace(**staged)
    train_bank(full, show_progress=False)
    killed = tiny_run_config(tmp_path / "b", tiny_task, iterations=4).replace(**staged)
    train_bank(killed, show_progress=False, stop_after=5)  # one step into the stage
    assert load_checkpoint(killed.run_dir / "checkpoint.pt").iteration == 4
    train_bank(killed, show_progress=False, stop_after=3)  # resumes at the stage's start
    assert load_checkpoint(killed.run_dir / "checkpoint.pt").iteration == 6
    assert train_bank(killed, show_progress=False).resumed_from == 6  # inside: cache read back
    a = load_checkpoint(full.run_dir / "checkpoint.pt")
    b = load_checkpoint(killed.run_dir / "checkpoint.pt")
    assert a.iteration == b.iteration == 8
    for k in a.model:
        assert torch.equal(a.model[k], b.model[k]), k


def test_a_lost_cache_inside_the_stage_is_one_line(tmp_path, tiny_task):
    cfg = tiny_run_config(tmp_path, tiny_task, iterations=4).replace(**STAGED)
    train_bank(cfg, show_progress=False, stop_after=6)
    (cfg.run_dir / CACHE).write_bytes(b"not a cache")
    with pytest.raises(CheckpointError, match="unreadable teacher cache"):
        train_bank(cfg, show_progress=False)


def test_ordering_at_the_start_keeps_the_largest_model(tmp_path, tiny_task):
    """Ordering is exact at full width: with the sandwich off and m = 1 the largest model's
    training is the same function whether or not its channels were sorted first."""
    base = tiny_run_config(tmp_path / "a", tiny_task, iterations=2, models_per_step=1)
    ordered = tiny_run_config(tmp_path / "b", tiny_task, iterations=2, models_per_step=1).replace(
        ordering={"criterion": "bn_gamma"}
    )
    assert ordered.ordering_iteration == 0
    assert base.training_hash() != ordered.training_hash()
    a = train_bank(base, show_progress=False, stop_after=1)
    b = train_bank(ordered, show_progress=False, stop_after=1)
    assert a.iterations == b.iterations == 1
    x = torch.randn(2, 3, 32, 32)
    a.bank.model.eval(), b.bank.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(a.bank.model(x), b.bank.model(x), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "section, value, message",
    [
        ("teacher", {"iterations": -1}, "field 'teacher.iterations': expected 0 (off)"),
        (
            "teacher",
            {"models_per_step": 0},
            "field 'teacher.models_per_step': expected a positive",
        ),
        ("teacher", {"temperature": 0}, "field 'teacher.temperature': expected a number above 0"),
        ("teacher", {"features": -1.0}, "field 'teacher.features': expected a weight at least 0"),
        ("teacher", {"lr": 0}, "field 'teacher.lr': expected a number above 0"),
        (
            "teacher",
            {"adaptation": -0.5},
            "field 'teacher.adaptation': expected a weight at least 0",
        ),
        ("teacher", {"views": 3}, "field 'teacher.views': unknown"),
        ("random_models", "flops", "field 'random_models': expected one of units, macs"),
        ("smallest_budget", "1/0", "field 'smallest_budget': budget '1/0': division by zero"),
        ("smallest_budget", 2, "field 'smallest_budget': budget '2': a fraction above 1"),
        ("smallest_budget", "", "field 'smallest_budget': expected a non-empty string"),
        (
            "ordering",
            {"criterion": "random"},
            "field 'ordering.criterion': expected one of l1_next, l1_out, bn_gamma",
        ),
    ],
)
def test_stage_options_are_checked(tmp_path, tiny_task, section, value, message):
    cfg = tiny_run_config(tmp_path, tiny_task)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cfg.replace(**{section: value})


def test_configs_without_the_stage_keep_their_identity(tmp_path, tiny_task):
    cfg = tiny_run_config(tmp_path, tiny_task)
    same = cfg.replace(
        teacher={"iterations": 0}, ordering={"criterion": None}, random_models="units"
    )
    assert same.training_hash() == cfg.training_hash()
    assert cfg.replace(random_models="macs").training_hash() != cfg.training_hash()
    assert cfg.replace(smallest_budget=None).training_hash() == cfg.training_hash()
    assert cfg.replace(smallest_budget=0.25).smallest_budget == "0.25"  # as YAML reads it
    assert cfg.replace(smallest_budget="1/64").training_hash() != cfg.training_hash()
    assert cfg.replace(teacher={"iterations": 2}).training_hash() != cfg.training_hash()
    staged = cfg.replace(teacher={"iterations": 2})
    assert staged.replace(teacher={"adaptation": 0.0}).training_hash() == staged.training_hash()
