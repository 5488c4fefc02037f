"""The within-budget ranking check: distinct candidates of one budget's band, fixed disjoint
test halves, correlations and regret per score, saved beside the run and drawn in the report."""

from __future__ import annotations

import json
import time

import pytest
import torch

from slimda_nas.cli import main
from slimda_nas.cost.budget import parse_budget
from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.evaluate.scores import DEFAULT_METRIC, SCORES
from slimda_nas.evaluate.within_budget import (
    BAND_LOW,
    band_ranking,
    read_rankings,
    sample_band,
    split_halves,
)
from slimda_nas.train.run import load_run
from tests.conftest import copy_run

SMALL = EvalSettings(calibration_images=8, scoring_images=8, batch_size=8)


@pytest.fixture
def run_dir(tiny_run_dir, tmp_path):
    return copy_run(tiny_run_dir, tmp_path / "run")


def test_band_sampler_gives_distinct_configurations_of_the_band_fast(run_dir):
    ev = Evaluator(load_run(run_dir, device="cpu"), SMALL)
    high = parse_budget("1/64").macs(ev.cost.macs(ev.anchor_config))
    t0 = time.perf_counter()
    configs = sample_band(ev, 20, high, int(BAND_LOW * high), seed=1)
    assert (time.perf_counter() - t0) / 20 < 1.0
    keys = {ev.run.space.to_indices(c) for c in configs}
    assert len(keys) == 20
    assert all(BAND_LOW * high <= ev.cost.macs(c) <= high for c in configs)
    assert sample_band(ev, 20, high, int(BAND_LOW * high), seed=1) == configs  # seeded


def test_split_halves_are_fixed_and_disjoint():
    a, b = split_halves(2007)
    a2, b2 = split_halves(2007)
    assert torch.equal(a, a2) and torch.equal(b, b2)
    assert len(set(a.tolist()) & set(b.tolist())) == 0
    assert sorted(a.tolist() + b.tolist()) == list(range(2007))
    assert abs(len(a) - len(b)) <= 1


def test_band_ranking_reports_every_score_pick_and_regret(run_dir):
    ev = Evaluator(load_run(run_dir, device="cpu"), SMALL)
    budget = parse_budget("1/4").resolve(ev.cost.macs(ev.anchor_config))
    r = band_ranking(ev, budget, 6, seed=0, subsets=(4, 8))
    rec = r.to_dict()
    assert rec["n"] == 6 and set(rec["by_images"]) == {"4", "8"}
    table = rec["by_images"]["8"]
    assert set(table) == {*SCORES, "macs"}
    acc = [c["accuracy"] for c in rec["candidates"]]
    for row in table.values():
        assert row["pick_accuracy"] in acc
        assert row["regret"] == pytest.approx(max(acc) - row["pick_accuracy"])
    # the kl pick is the candidate of least kl on the 8 scoring images
    kl = [c["scores"]["8"]["kl"] for c in rec["candidates"]]
    assert table["kl"]["pick_accuracy"] == acc[kl.index(min(kl))]
    for c in rec["candidates"]:
        assert BAND_LOW * budget.macs <= c["macs"] <= budget.macs
        assert 0 <= c["halves"][0] <= 1 and 0 <= c["halves"][1] <= 1


def test_the_cli_saves_budgets_beside_the_run_and_the_report_draws_them(run_dir, capsys):
    # a damaged file from before (budgets a list: a TypeError, exit 1) is replaced
    (run_dir / "ranking_within.json").write_text('{"budgets": []}')
    args = ["eval", "--run", str(run_dir), "--ranking", "5", "--budget", "1/4,1/16"]
    args += ["--device", "cpu", "--calibration-images", "8", "--scoring-images", "8"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "split-half ceiling" in out and f"{DEFAULT_METRIC} (searched)" in out
    saved = read_rankings(run_dir)
    assert set(saved) == {"1/4", "1/16"} and saved["1/4"]["n"] == 5
    raw = json.loads((run_dir / "ranking_within.json").read_text())
    assert raw["settings"]["subsets"]["scoring"] == 8
    search = ["search", "--run", str(run_dir), "--budget", "1/4", "--trials", "3", "--no-report"]
    assert main([*search, "--calibration-images", "8", "--scoring-images", "8"]) == 0
    assert main(["report", "--run", str(run_dir), "--device", "cpu", "--no-latency"]) == 0
    html = (run_dir / "report" / "index.html").read_text()
    assert "Ranking within a budget" in html and "1/16" in html
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    assert set(summary["within_budget"]) == {"1/4", "1/16"}
