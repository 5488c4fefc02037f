"""The warm-up (in-place distillation) and progressive shrinking: they run before and during
adaptation on a tiny config, resume bit for bit after a kill like the rest of training, open
the widths as scheduled, and their options are checked like every run-config field."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import torch

from slimda_nas.errors import ConfigError
from slimda_nas.space import load_space
from slimda_nas.train import load_run, train_bank
from slimda_nas.train.checkpoint import load_checkpoint
from slimda_nas.train.config import NOT_TRAINED, RunConfig
from slimda_nas.train.sandwich import open_choices, sample_model_batch
from tests.conftest import SPACES, tiny_run_config

WARM = {"warmup": {"iterations": 4, "images": "both"}, "shrinking": {"stages": 2, "fraction": 0.5}}


def test_the_warm_up_runs_first_and_is_logged(tmp_path, tiny_task):
    cfg = tiny_run_config(tmp_path, tiny_task, iterations=4, log_every=1).replace(**WARM)
    result = train_bank(cfg, show_progress=False)
    assert result.iterations == cfg.total_iterations == 8
    steps = [json.loads(x) for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in steps if "loss" in x]
    assert [x["phase"] for x in steps] == ["warmup"] * 4 + ["adaptation"] * 4
    assert all("warmup_kd" in x and "warmup_ce" in x for x in steps[:4])
    assert all("seed" in x and "warmup_kd" not in x for x in steps[4:])  # slimda afterwards
    assert steps[0]["lambda"] == 0.0 and steps[4]["lambda"] == 0.0 < steps[-1]["lambda"]
    assert load_run(cfg.run_dir, device="cpu").config.warmup.iterations == 4  # finished


def test_warm_up_and_shrinking_resume_bit_for_bit(tmp_path, tiny_task):
    full = tiny_run_config(tmp_path / "a", tiny_task, iterations=4).replace(**WARM)
    train_bank(full, show_progress=False)
    killed = tiny_run_config(tmp_path / "b", tiny_task, iterations=4).replace(**WARM)
    train_bank(killed, show_progress=False, stop_after=3)  # inside the warm-up
    assert load_checkpoint(killed.run_dir / "checkpoint.pt").iteration == 2
    train_bank(killed, show_progress=False, stop_after=4)  # across the phase boundary
    assert load_checkpoint(killed.run_dir / "checkpoint.pt").iteration == 6
    assert train_bank(killed, show_progress=False).resumed_from == 6
    a = load_checkpoint(full.run_dir / "checkpoint.pt")
    b = load_checkpoint(killed.run_dir / "checkpoint.pt")
    assert a.iteration == b.iteration == 8
    for k in a.model:
        assert torch.equal(a.model[k], b.model[k]), k


def test_shrinking_opens_the_widths_in_stages():
    space = load_space(SPACES / "digits_cnn.yaml")  # 10 choices per unit
    assert open_choices(space, 0.3, 0, 0.5) is None  # off
    assert open_choices(space, 0.0, 2, 0.5) == (4,) * 6  # the widest third first
    assert open_choices(space, 0.26, 2, 0.5) == (7,) * 6
    assert open_choices(space, 0.5, 2, 0.5) == (10,) * 6  # all, from half the phase on
    first = open_choices(space, 0.0, 2, 0.5)
    configs = sample_model_batch(space, 6, seed=0, iteration=3, open_=first)
    for c in configs:
        for u, k in zip(space.units, first, strict=True):
            assert u.index_of(c[u.name]) >= len(u.choices) - k
    assert configs[0] == space.largest()
    assert [u.index_of(configs[1][u.name]) for u in space.units] == [6] * 6  # narrowest open
    # without shrinking the draw is what it always was
    assert sample_model_batch(space, 4, 0, 3) == sample_model_batch(space, 4, 0, 3, open_=None)


@pytest.mark.parametrize(
    "section, value, message",
    [
        ("warmup", {"iterations": -1}, "field 'warmup.iterations': expected 0 (off)"),
        (
            "warmup",
            {"images": "all"},
            "field 'warmup.images': expected one of source, target, both",
        ),
        ("warmup", {"temperature": 0}, "field 'warmup.temperature': expected a number above 0"),
        ("warmup", {"lr": -1.0}, "field 'warmup.lr': expected a number above 0"),
        ("warmup", {"steps": 3}, "field 'warmup.steps': unknown"),
        (
            "shrinking",
            {"fraction": 0},
            "field 'shrinking.fraction': expected a fraction in (0, 1]",
        ),
        ("shrinking", {"stages": "two"}, "field 'shrinking.stages': expected an integer"),
        ("distillation", {"ramp": "yes"}, "field 'distillation.ramp': expected true or false"),
    ],
)
def test_warm_up_options_are_checked(tmp_path, tiny_task, section, value, message):
    cfg = tiny_run_config(tmp_path, tiny_task)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cfg.replace(**{section: value})


def test_configs_without_a_warm_up_keep_their_identity(tmp_path, tiny_task):
    """Sections left off do not enter the training hash: runs trained before they existed
    resume (and are left as they are when finished)."""
    cfg = tiny_run_config(tmp_path, tiny_task)
    d = dataclasses.asdict(cfg)
    for key in (*NOT_TRAINED, "warmup", "shrinking", "averaging", "ordering", "teacher"):
        d.pop(key)
    d["distillation"].pop("ramp")  # added later, off by default like the warm-up
    d.pop("domain_bn")  # likewise
    d.pop("random_models")  # likewise, at its default (units)
    d.pop("smallest_budget")  # likewise, at its default (the space's narrowest)
    before = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
    assert cfg.training_hash() == before
    assert cfg.replace(**WARM).training_hash() != before
    assert cfg.replace(distillation={"ramp": True}).training_hash() != before
    assert cfg.replace(domain_bn="separate").training_hash() != before
    assert cfg.replace(averaging={"start": 0.5}).training_hash() != before
    assert isinstance(cfg, RunConfig)
