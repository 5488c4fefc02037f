"""A staged run may start from another run's adaptation (``--adapted-from``): the bank is the
one training from scratch gives, bit for bit, and resumes after a kill like every run; a run
whose adaptation differs is refused in one line before anything is written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from slimda_nas.errors import CheckpointError
from slimda_nas.train import TrainSummary, train_bank
from slimda_nas.train.checkpoint import ADAPTED, load_checkpoint
from tests.conftest import tiny_run_config
from tests.reliability.conftest import in_process, one_line_error

STAGED = {
    "models_per_step": 1,  # adaptation trains the largest only
    "teacher": {"iterations": 4, "models_per_step": 3},
    "ordering": {"criterion": "l1_next"},
    "shrinking": {"stages": 1, "fraction": 0.5},
}
# what acts only from the stage on: another stage, no ordering, no shrinking, a floor
OTHER_STAGE = {
    "teacher": {"iterations": 3, "models_per_step": 2, "features": 0.0},
    "ordering": {"criterion": None},
    "shrinking": {"stages": 0},
    "smallest_budget": "1/4",
}


def _staged(path, task, **changes):
    return tiny_run_config(path, task, iterations=4).replace(**STAGED).replace(**changes)


def _same_weights(a, b) -> None:
    a, b = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert a.iteration == b.iteration
    for k in a.model:
        assert torch.equal(a.model[k], b.model[k]), k


def test_the_adaptation_hash_ignores_only_what_acts_from_the_stage_on(tmp_path, tiny_task):
    base = _staged(tmp_path, tiny_task)
    assert base.adaptation_hash() is not None
    assert base.replace(**OTHER_STAGE).adaptation_hash() == base.adaptation_hash()
    assert base.replace(name="other", out=str(tmp_path / "x")).adaptation_hash() == (
        base.adaptation_hash()
    )
    for changes in ({"seed": 1}, {"iterations": 5}, {"optimizer": {"lr": 0.02}}):
        assert base.replace(**changes).adaptation_hash() != base.adaptation_hash(), changes
    copy = tmp_path / "space_copy.yaml"  # the same space named by another path (own data)
    copy.write_text(Path(base.space).read_text())
    assert base.replace(space=str(copy)).adaptation_hash() == base.adaptation_hash()
    # adaptation that trains narrower models too (m > 1, or m = 1 without the sandwich: a
    # random model), or no stage at all: no shared adaptation
    assert base.replace(models_per_step=3).adaptation_hash() is None
    assert base.replace(sandwich=False).adaptation_hash() is None
    assert base.replace(teacher={"iterations": 0}).adaptation_hash() is None


def test_a_field_added_later_at_its_default_keeps_the_adaptation_hashes(
    tmp_path, tiny_task, monkeypatch
):
    """A run config field added in a later version, at its default (off), must leave the
    hashes of existing runs, and with them the adapted.pt files they can adopt, unchanged."""
    from slimda_nas.train import config as config_module

    base = _staged(tmp_path, tiny_task)
    before = base.training_hash(), base.adaptation_hash()
    plain_to_dict = config_module.RunConfig.to_dict
    monkeypatch.setattr(
        config_module.RunConfig, "to_dict", lambda self: {**plain_to_dict(self), "later": 0}
    )
    assert base.adaptation_hash() != before[1]  # the new field counts...
    monkeypatch.setitem(config_module._ADDED_LATER, "later", 0)
    assert (base.training_hash(), base.adaptation_hash()) == before  # ...unless at its default


def test_a_run_from_anothers_adaptation_is_the_bank_from_scratch(tmp_path, tiny_task):
    donor = _staged(tmp_path / "donor", tiny_task)
    train_bank(donor, show_progress=False)
    adapted = load_checkpoint(donor.run_dir / ADAPTED)
    assert adapted.iteration == 4 and adapted.adaptation_hash == donor.adaptation_hash()

    scratch = _staged(tmp_path / "scratch", tiny_task, **OTHER_STAGE)
    train_bank(scratch, show_progress=False)
    started = _staged(tmp_path / "started", tiny_task, **OTHER_STAGE)
    r = train_bank(started, show_progress=False, stop_after=1, adapted_from=donor.run_dir)
    assert (r.resumed_from, r.iterations, r.adapted_from) == (4, 5, donor.run_dir)
    # killed before its first checkpoint (every 2 iterations): the same command starts again
    r = train_bank(started, show_progress=False, stop_after=2, adapted_from=donor.run_dir)
    assert (r.resumed_from, r.iterations, r.adapted_from) == (4, 6, donor.run_dir)
    # killed after it: the same command resumes from the run's own checkpoint
    r = train_bank(started, show_progress=False, adapted_from=donor.run_dir)
    assert (r.resumed_from, r.iterations, r.adapted_from) == (6, 7, None)
    _same_weights(scratch.run_dir, started.run_dir)
    lines = (started.run_dir / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"iteration": 4, "adapted_from": str(donor.run_dir)}
    # its own copy of the adaptation: it can be the source of another run in turn
    assert (started.run_dir / ADAPTED).read_bytes() == (donor.run_dir / ADAPTED).read_bytes()
    # the summary names the source, though the call that finished it had resumed
    assert TrainSummary.read(started.run_dir).adapted_from == str(donor.run_dir)
    assert TrainSummary.read(scratch.run_dir).adapted_from is None

    # the donor's own config, started from its adapted.pt, is the donor
    again = _staged(tmp_path / "again", tiny_task)
    train_bank(again, show_progress=False, adapted_from=donor.run_dir / ADAPTED)
    _same_weights(donor.run_dir, again.run_dir)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"optimizer": {"lr": 0.02}}, "not the adaptation this config trains (field 'optimizer'"),
        ({"iterations": 3}, "iteration 4, expected 3"),
        ({"models_per_step": 3}, "adapts more than the largest model"),
    ],
)
def test_another_adaptation_is_refused_in_one_line(tmp_path, tiny_task, changes, message):
    donor = _staged(tmp_path / "donor", tiny_task, teacher={"iterations": 1})
    train_bank(donor, show_progress=False, stop_after=4)  # the adaptation only
    assert (donor.run_dir / ADAPTED).is_file()
    cfg = _staged(tmp_path / "new", tiny_task, name="other", **changes)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(")):
        train_bank(cfg, show_progress=False, adapted_from=donor.run_dir)
    assert not cfg.run_dir.exists()  # refused before anything was written


def test_the_command_line_names_the_missing_adaptation(tmp_path, tiny_task, capsys):
    cfg = _staged(tmp_path, tiny_task)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    for missing in (tmp_path / "no_such_run", tmp_path):  # no folder; no adapted.pt in it
        code, err = in_process(
            ["train", "--config", str(path), "--quiet", "--adapted-from", str(missing)], capsys
        )
        one_line_error(code, err, f"{missing}: no adapted.pt there")
        assert not cfg.run_dir.exists()
        dry = ["train", "--config", str(path), "--dry-run", "--adapted-from", str(missing)]
        one_line_error(*in_process(dry, capsys), f"{missing}: no adapted.pt there")


def test_the_dry_run_leaves_the_adopted_adaptation_out_of_its_time(tmp_path, tiny_task, capsys):
    donor = _staged(tmp_path / "donor", tiny_task)
    train_bank(donor, show_progress=False, stop_after=4)
    cfg = _staged(tmp_path / "new", tiny_task, name="other", **OTHER_STAGE)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    argv = ["train", "--config", str(path), "--dry-run", "--adapted-from", str(donor.run_dir)]
    from slimda_nas.cli import main

    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"adaptation: taken from {donor.run_dir / ADAPTED}, not trained again" in out
    assert "adaptation: 1 model(s) per step" not in out


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda s: s.__setitem__("ranks", [{}]), "damaged training state (KeyError"),
        (lambda s: s.__setitem__("ranks", "x"), "written by ? process(es)"),
        (lambda s: s["ranks"][0]["rng"].__setitem__("torch", torch.zeros(3)), "damaged"),
    ],
)
def test_a_damaged_training_state_is_one_line_naming_the_file(
    tmp_path, tiny_task, damage, message
):
    """An adapted.pt (or checkpoint.pt: the same loading) whose data streams or RNG states are
    damaged: a CheckpointError naming the file, not an internal error."""
    donor = _staged(tmp_path / "donor", tiny_task, teacher={"iterations": 1})
    train_bank(donor, show_progress=False, stop_after=4)
    state = torch.load(donor.run_dir / ADAPTED, weights_only=True)
    damage(state)
    torch.save(state, donor.run_dir / ADAPTED)
    cfg = _staged(tmp_path / "new", tiny_task, name="other", teacher={"iterations": 1})
    with pytest.raises(CheckpointError, match=re.escape(message)) as e:
        train_bank(cfg, show_progress=False, adapted_from=donor.run_dir)
    assert str(e.value).startswith(str(donor.run_dir / ADAPTED))
