"""One rule chooses the model at a budget: results.json, the report and export name the same
one; and a search changes no global state (Optuna's log level) beyond its own run."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest

from slimda_nas.cost.budget import parse_budget
from slimda_nas.evaluate.evaluator import EvalSettings
from slimda_nas.export.select import by_budget
from slimda_nas.search.record import ResultsFile, choose
from slimda_nas.search.runner import SearchOptions, run_search
from slimda_nas.search.storage import open_storage
from slimda_nas.search.studies import picks, read_studies
from slimda_nas.train.run import load_run
from tests.conftest import REPO, copy_run

# a discrete score: ties are common, so the tie-break order is exercised
SMALL = EvalSettings(calibration_images=8, scoring_images=8, batch_size=8, metric="disagreement")


@pytest.fixture
def run_dir(tiny_run_dir, tmp_path):
    return copy_run(tiny_run_dir, tmp_path / "run")


def test_results_report_and_export_choose_the_same_model(run_dir):
    for sampler, seed in (("tpe", 0), ("tpe", 1), ("random", 0), ("uniform", 0)):
        opts = SearchOptions(
            budgets="1/4", sampler=sampler, seed=seed, evaluations=4, settings=SMALL
        )
        run_search(run_dir, opts, accuracy=False)
    results = ResultsFile.read(run_dir)
    budget = parse_budget("1/4").resolve(results.anchor_macs)
    stored = [k for k in results.picks() if k.budget.macs == budget.macs]
    assert len(stored) == 4
    from_results = choose(k.point for k in stored)

    run = load_run(run_dir, device="cpu")
    studies = read_studies(open_storage(None, run_dir), run.space, "journal")
    report = [k for k in picks(studies, [budget]) if k.chosen]
    exported = by_budget(run_dir, "1/4", None).point

    assert len(report) == 1
    chosen = {(p.study, p.trial) for p in (from_results, report[0].point, exported)}
    assert len(chosen) == 1, chosen


def test_ranking_by_another_metric_uses_its_score():
    from slimda_nas.search.record import Point

    def point(name, kl, dis):
        upem = {"kl": kl, "disagreement": dis}
        return Point(
            study=name, sampler="tpe", seed=0, trial=0, key=name, config={}, macs=10,
            params=1, upem=upem, value=kl, evaluated=True, feasible=True,
        )  # fmt: skip

    a, b = point("a", 0.1, 0.5), point("b", 0.2, 0.3)
    assert choose([a, b]) is a
    assert choose([a, b], metric="disagreement") is b


def test_importing_the_package_leaves_optuna_logging_alone():
    code = (
        "import optuna; before = optuna.logging.get_verbosity(); "
        "import slimda_nas.search, slimda_nas.cli, slimda_nas.export, slimda_nas.report; "
        "assert optuna.logging.get_verbosity() == before, optuna.logging.get_verbosity()"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_a_search_restores_optuna_logging(run_dir):
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        opts = SearchOptions(budgets="1/4", sampler="random", evaluations=2, settings=SMALL)
        run_search(run_dir, opts, save=False, accuracy=False)
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(before)
