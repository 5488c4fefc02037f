"""Candidate evaluation: BN re-estimation, UPEM against the anchor, the anchor cache."""

from __future__ import annotations

import random

import pytest
import torch

from slimda_nas.data import LabelAccessError
from slimda_nas.evaluate import scores
from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.evaluate.scores import DEFAULT_METRIC, SCORES
from slimda_nas.train.checkpoint import load_checkpoint, save_checkpoint
from slimda_nas.train.run import load_run
from tests.conftest import copy_run

SMALL = EvalSettings(calibration_images=8, scoring_images=8, batch_size=4)


@pytest.fixture
def run_dir(tiny_run_dir, tmp_path):
    return copy_run(tiny_run_dir, tmp_path / "run")


def test_bn_reestimation_leaves_bank_statistics_untouched(run_dir):
    run = load_run(run_dir, device="cpu")
    before = {k: v.clone() for k, v in run.bank.model.state_dict().items()}
    ev = Evaluator(run, SMALL)
    for config in (run.space.smallest(), run.space.sample(random.Random(0))):
        ev.score(config)
        ev.accuracy(config)
    after = run.bank.model.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k


def test_same_config_same_upem_and_anchor_scores_zero(run_dir):
    ev = Evaluator(load_run(run_dir, device="cpu"), SMALL)
    config = ev.run.space.sample(random.Random(1))
    a, b = ev.score(config), ev.score(config)
    assert a.upem == b.upem
    anchor = ev.score(ev.anchor_config)
    assert set(anchor.upem) == set(SCORES)  # every score, from the same forward passes
    for name, s in SCORES.items():
        if s.reference == "anchor" and s.fn is not scores.hard_nll:  # a discrepancy: 0 to itself
            assert anchor.upem[name] == pytest.approx(0.0, abs=1e-6), name
        if s.reference == "ensemble":  # the anchor is a member, not the ensemble: above 0
            assert anchor.upem[name] >= -1e-9, name
    assert anchor.upem["nll"] == pytest.approx(anchor.upem["entropy"], abs=0.7)
    assert a.macs < anchor.macs


def test_bn_reestimation_changes_the_score(run_dir):
    run = load_run(run_dir, device="cpu")
    on = Evaluator(run, SMALL).score(run.space.smallest())
    off = Evaluator(
        run, EvalSettings(calibration_images=10, scoring_images=10, recalibrate_bn=False)
    ).score(run.space.smallest())
    assert on.upem != off.upem


def test_upem_never_reads_a_label(run_dir, monkeypatch):
    from slimda_nas.data.imageset import ImageSet

    def refuse(self):
        raise LabelAccessError(f"{self.name}: labels read")

    monkeypatch.setattr(ImageSet, "labels", property(refuse))
    ev = Evaluator(load_run(run_dir, device="cpu"), SMALL)
    score = ev.score(ev.run.space.smallest())
    assert score.upem["kl"] >= 0
    with pytest.raises(LabelAccessError):
        ev.accuracy(ev.run.space.smallest())  # accuracy does need labels: proof the patch bites


def test_anchor_cache_is_used_and_invalidated_when_checkpoint_changes(run_dir):
    # start from no cached references: the session's run may hold other tests' (a report's)
    for old in (run_dir / "cache").glob("references-*.pt"):
        old.unlink()
    ev = Evaluator(load_run(run_dir, device="cpu"), SMALL)
    files = list((run_dir / "cache").glob("references-*.pt"))
    assert len(files) == 1
    # a cached anchor is read back, not recomputed: poison it and see it come back
    stored = torch.load(files[0], weights_only=True)
    poisoned = torch.zeros_like(stored["references"]["anchor"]["ca"])
    stored["references"]["anchor"]["ca"] = poisoned
    torch.save(stored, files[0])
    assert torch.equal(Evaluator(load_run(run_dir, device="cpu"), SMALL).anchor_log_p, poisoned)
    # a changed checkpoint never uses that file
    state = load_checkpoint(run_dir / "checkpoint.pt")
    state.model["conv1.weight"] += 0.01
    save_checkpoint(run_dir / "checkpoint.pt", state)
    fresh = Evaluator(load_run(run_dir, device="cpu"), SMALL)
    assert fresh.cache_key()["checkpoint"] != ev.cache_key()["checkpoint"]
    assert not torch.equal(fresh.anchor_log_p, poisoned)
    assert len(list((run_dir / "cache").glob("references-*.pt"))) == 2


def test_scores_by_hand():
    import math

    p = torch.tensor([[0.5, 0.5]]).log()  # the reference
    q = torch.tensor([[0.9, 0.1]]).log()  # the candidate
    assert scores.kl(q, p).item() == pytest.approx(
        0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    )
    assert scores.reverse_kl(q, p).item() == pytest.approx(
        0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    )
    assert scores.tv(q, p).item() == pytest.approx(0.4)
    assert scores.disagreement(q, p).item() == 0.0  # argmax of [0.5, 0.5] is class 0
    assert scores.hard_nll(q, p).item() == pytest.approx(-math.log(0.9))
    m = [0.7, 0.3]
    js = 0.5 * sum(a * math.log(a / b) for a, b in zip([0.5, 0.5], m)) + 0.5 * sum(
        a * math.log(a / b) for a, b in zip([0.9, 0.1], m)
    )
    assert scores.js(q, p).item() == pytest.approx(js)
    assert scores.entropy(q).item() == pytest.approx(-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)))
    # two confident, different predictions: nuclear norm 2 over 2 images, IM = log 2
    two = torch.tensor([[1 - 1e-9, 1e-9], [1e-9, 1 - 1e-9]]).log()
    assert scores.neg_bnm(two).item() == pytest.approx(-1.0, abs=1e-6)
    assert scores.neg_im(two).mean().item() == pytest.approx(-math.log(2), abs=1e-6)
    same = torch.tensor([[1 - 1e-9, 1e-9], [1 - 1e-9, 1e-9]]).log()  # collapsed: worse
    assert scores.neg_bnm(same).item() > scores.neg_bnm(two).item()
    assert scores.neg_im(same).mean().item() > scores.neg_im(two).mean().item()


def test_settings_are_recorded(run_dir):
    ev = Evaluator(load_run(run_dir, device="cpu"), SMALL)
    rec = ev.record()
    assert rec["subsets"]["calibration"] == 8 and rec["subsets"]["scoring"] == 8
    assert rec["head"] == "ca" and rec["recalibrate_bn"] is True


def test_ranking_check_reports_every_metric_and_the_macs_baseline(run_dir, capsys):
    import json

    from scipy import stats

    from slimda_nas.cli import main
    from slimda_nas.evaluate.ranking import correlations

    assert correlations([1.0, 2.0, 3.0], [0.9, 0.8, 0.1]) == pytest.approx(
        (0.9177, 1.0, 1.0), abs=1e-3
    )  # by hand
    args = ["eval", "--run", str(run_dir), "--ranking", "6", "--device", "cpu"]
    args += ["--calibration-images", "8", "--scoring-images", "8", "--batch-size", "4"]
    assert main(args) == 0
    assert main([*args, "--metric", "js"]) == 0  # its own file: ranking.json stays the default's
    out = capsys.readouterr().out
    assert "MACs alone" in out and f"UPEM {DEFAULT_METRIC} (searched)" in out
    record = json.loads((run_dir / "ranking.json").read_text())
    assert record["metric"] == DEFAULT_METRIC and record["n"] == 6
    assert record["settings"]["subsets"]["batch_size"] == 4  # --batch-size is honoured
    assert json.loads((run_dir / "ranking-js.json").read_text())["metric"] == "js"
    assert set(record["by_score"]) == {*SCORES, "macs"}
    accuracy = [c["accuracy"] for c in record["candidates"]]
    for metric in SCORES:
        upem = [-c["upem"][metric] for c in record["candidates"]]
        expected = stats.spearmanr(upem, accuracy)[0] if len(set(accuracy)) > 1 else None
        if expected is not None:
            assert record["by_score"][metric]["spearman"] == pytest.approx(expected)
    assert record["by_score"][DEFAULT_METRIC]["spearman"] == pytest.approx(
        record["spearman"], nan_ok=True
    )
