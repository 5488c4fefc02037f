"""Tail weight averaging: the trained bank is the mean of the weights it was due to average,
training follows the same trajectory as without it, a killed run resumes bit for bit with its
average, and the options are checked like every run-config field."""

from __future__ import annotations

import pytest
import torch

from slimda_nas.errors import ConfigError
from slimda_nas.train import TrainSummary, train_bank
from slimda_nas.train.averaging import joins_average
from slimda_nas.train.checkpoint import load_checkpoint
from tests.conftest import tiny_run_config

AVERAGE = {"averaging": {"start": 0.5, "every": 1}}  # the last 2 of 4 iterations


def test_joins_average_counts_back_from_the_last_iteration():
    assert [d for d in range(1, 5) if joins_average(0.5, 1, d, 4)] == [3, 4]
    joined = [d for d in range(1, 3001) if joins_average(2 / 3, 10, d, 3000)]
    assert (joined[0], joined[-1], len(joined)) == (2010, 3000, 100)
    assert not any(joins_average(None, 1, d, 4) for d in range(1, 5))
    assert not joins_average(0.0, 1, 0, 4)  # warm-up iterations (0 or below) never join


def test_the_bank_is_the_average_of_the_last_weights(tmp_path, tiny_task):
    plain = tiny_run_config(tmp_path / "plain", tiny_task, iterations=4, checkpoint_every=1)
    weights = {}
    for it in (3, 4):
        train_bank(plain, show_progress=False, stop_after=3 if it == 3 else 1)
        state = load_checkpoint(plain.run_dir / "checkpoint.pt")
        assert state.iteration == it
        weights[it] = state.model
    averaged = tiny_run_config(tmp_path / "avg", tiny_task, iterations=4).replace(**AVERAGE)
    train_bank(averaged, show_progress=False)
    state = load_checkpoint(averaged.run_dir / "checkpoint.pt")
    assert state.iteration == 4 and state.average is None  # the average IS the model now
    changed = 0
    for name, value in state.model.items():
        if value.is_floating_point():
            mean = (weights[3][name] + weights[4][name]) / 2
            torch.testing.assert_close(value, mean, rtol=1e-6, atol=1e-7)
            changed += not torch.equal(weights[3][name], weights[4][name])
        else:
            assert torch.equal(value, weights[4][name]), name  # BN batch counters: the last
    assert changed > 0  # the two averaged weights differ, so the test can fail
    assert TrainSummary.read(averaged.run_dir).averaged_weights == 2


def test_a_killed_averaging_run_resumes_bit_for_bit(tmp_path, tiny_task):
    full = tiny_run_config(tmp_path / "a", tiny_task, iterations=6, checkpoint_every=1)
    full = full.replace(averaging={"start": 0.1, "every": 2})  # iterations 2, 4, 6
    train_bank(full, show_progress=False)
    killed = full.replace(out=str(tmp_path / "b" / "run"))
    train_bank(killed, show_progress=False, stop_after=3)
    mid = load_checkpoint(killed.run_dir / "checkpoint.pt")
    assert mid.iteration == 3 and mid.average["count"] == 1  # iteration 2 joined
    assert train_bank(killed, show_progress=False).resumed_from == 3
    a = load_checkpoint(full.run_dir / "checkpoint.pt")
    b = load_checkpoint(killed.run_dir / "checkpoint.pt")
    for name in a.model:
        assert torch.equal(a.model[name], b.model[name]), name


@pytest.mark.parametrize(
    "value, message",
    [
        ({"start": 1.0}, "field 'averaging.start': expected a fraction in [0, 1) (or null: off)"),
        ({"start": -0.1}, "field 'averaging.start': expected a fraction in [0, 1)"),
        ({"start": "late"}, "field 'averaging.start': expected a number"),
        ({"every": 0}, "field 'averaging.every': expected a positive integer"),
        ({"from": 0.5}, "field 'averaging.from': unknown"),
    ],
)
def test_averaging_options_are_checked(tmp_path, tiny_task, value, message):
    cfg = tiny_run_config(tmp_path, tiny_task)
    with pytest.raises(
        ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        cfg.replace(averaging=value)
