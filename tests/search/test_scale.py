"""Search at scale: every sampler delivers the evaluations asked at tight budgets, repaired
proposals are feasible and recorded with their originals, feasible configurations are drawn
fast where uniform draws never fit, and a killed search with repairs resumes exactly."""

from __future__ import annotations

import itertools
import json
import random
import signal
import time
import warnings
from collections import Counter

import optuna
import pytest

from slimda_nas.bank import ModelBank
from slimda_nas.cost.budget import parse_budget
from slimda_nas.cost.feasible import BandSampler, repair
from slimda_nas.cost.macs import CostModel
from slimda_nas.errors import Notice
from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.search.record import config_key, trial_record
from slimda_nas.search.runner import SearchOptions, run_search
from slimda_nas.search.storage import open_storage
from slimda_nas.space import load_space, space_from_dict
from slimda_nas.train.run import load_run
from tests.conftest import SPACES, cli_popen, copy_run, search_args
from tests.reliability.conftest import cli

SMALL = EvalSettings(calibration_images=8, scoring_images=8, batch_size=8)


def _trials(run_dir, name):
    return optuna.load_study(study_name=name, storage=open_storage(None, run_dir)).trials


@pytest.mark.parametrize("n", [100, 300])
@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_samplers_deliver_every_evaluation_at_one_64th(tiny_run_dir, tmp_path, sampler, n):
    run_dir = copy_run(tiny_run_dir, tmp_path / "run")
    ev = Evaluator(load_run(run_dir, device="cpu"), SMALL)
    opts = SearchOptions(budgets="1/64", sampler=sampler, evaluations=n, settings=SMALL)
    study = run_search(ev, opts, save=False, accuracy=False).studies[0]
    assert study.evaluations == n and not study.short
    evaluated = [t for t in _trials(run_dir, study.name) if t.user_attrs.get("evaluated")]
    keys = [t.user_attrs["key"] for t in evaluated]
    assert len(keys) == len(set(keys)) == n  # n distinct configurations, each scored once
    assert all(t.user_attrs["macs"] <= study.budget.macs for t in evaluated)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random"])
def test_a_budget_holding_fewer_configurations_than_asked_is_searched_exhaustively(
    tiny_run_dir, tmp_path, sampler
):
    run_dir = copy_run(tiny_run_dir, tmp_path / "run")
    ev = Evaluator(load_run(run_dir, device="cpu"), SMALL)
    band = BandSampler(ev.run.space, ev.cost)
    budget = parse_budget("1/128").resolve(ev.cost.macs(ev.anchor_config))
    held = band.enumerate(budget.macs, limit=1000)
    assert held is not None and 5 < len(held) < 30  # digits at 1/128: a dozen
    opts = SearchOptions(budgets="1/128", sampler=sampler, evaluations=30, settings=SMALL)
    with pytest.warns(
        Notice, match=f"only {len(held)} configurations fit .* evaluates all {len(held)}"
    ):
        study = run_search(ev, opts, save=False, accuracy=False).studies[0]
    assert study.evaluations == study.requested == len(held) and not study.short
    keys = {
        t.user_attrs["key"] for t in _trials(run_dir, study.name) if t.user_attrs.get("evaluated")
    }
    assert keys == {config_key(x) for x in held}  # every one of them, once


def test_the_baselines_keep_their_own_count_in_a_short_band(tiny_run_dir, tmp_path):
    run_dir = copy_run(tiny_run_dir, tmp_path / "run")
    ev = Evaluator(load_run(run_dir, device="cpu"), SMALL)
    opts = SearchOptions(budgets="1/128", sampler="greedy", evaluations=30, settings=SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Notice)  # no "evaluates all" notice for a baseline
        study = run_search(ev, opts, save=False, accuracy=False).studies[0]
    assert study.requested == 30 and study.budget.fits(study.picks()[0].point.macs)


def test_the_band_listing_is_exact():
    """On a space small enough to list by brute force, the pruned walk finds the same set."""
    space = _small_space()
    band = BandSampler(space, CostModel(ModelBank.build(space, 10)))
    for high in (band.macs([0] * 6), band.macs([3] * 6) // 9, band.macs([3] * 6) // 4):
        inside = [x for x in itertools.product(range(4), repeat=6) if band.macs(x) <= high]
        assert band.enumerate(high, limit=len(inside)) == inside
        assert band.enumerate(high, limit=len(inside) - 1) is None
    assert band.enumerate(band.macs([0] * 6) - 1, limit=10) == []


def test_a_repaired_proposal_is_feasible_and_recorded_with_its_original(tiny_run_dir, tmp_path):
    run_dir = copy_run(tiny_run_dir, tmp_path / "run")
    ev = Evaluator(load_run(run_dir, device="cpu"), SMALL)
    opts = SearchOptions(budgets="1/64", sampler="tpe", evaluations=40, settings=SMALL)
    study = run_search(ev, opts, save=False, accuracy=False).studies[0]
    trials = {t.number: t for t in _trials(run_dir, study.name)}
    repaired = [t for t in trials.values() if t.user_attrs.get("repaired_from")]
    assert repaired and study.repairs == len(repaired)
    whys = Counter()
    for t in repaired:
        rec, origin = trial_record(t), t.user_attrs["repaired_from"]
        assert rec.macs <= study.budget.macs and rec.proposer == "repair"
        original = trial_record(trials[origin["trial"]])
        assert original.key == origin["key"] != rec.key
        if origin["why"] == "over the budget":
            assert original.macs > study.budget.macs and not original.evaluated
            # shrunk, keeping the proposal's shape: no unit wider than proposed
            assert all(
                a <= b for a, b in zip(t.params.values(), trials[origin["trial"]].params.values())
            )
        else:
            assert origin["why"] == "already scored" and original.duplicate
        whys[origin["why"]] += 1
    assert whys["over the budget"] > 0


def test_without_repair_only_raw_proposals(tiny_run_dir, tmp_path):
    run_dir = copy_run(tiny_run_dir, tmp_path / "run")
    ev = Evaluator(load_run(run_dir, device="cpu"), SMALL)
    opts = SearchOptions(
        budgets="1/64", sampler="nsga2", evaluations=10, settings=SMALL, repair=False
    )
    study = run_search(ev, opts, save=False, accuracy=False).studies[0]
    assert study.repairs == 0
    assert not [t for t in _trials(run_dir, study.name) if t.user_attrs.get("repaired_from")]


def test_a_killed_search_with_repairs_resumes_exactly(tiny_run_dir, tmp_path):
    run = copy_run(tiny_run_dir, tmp_path / "run")
    args = search_args(
        run, "--budget", "1/64", "--sampler", "nsga2", "--trials", "30", "--seed", "3"
    )
    for _ in range(2):
        p = cli_popen(args)
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            files = list((run / "cache").glob("scores-*.jsonl"))
            if files and files[0].read_text().count("\n") >= 8:
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait()
    r = cli(args)
    assert r.returncode == 0, r.stderr[-2000:]
    scored = [
        json.loads(x)["key"]
        for x in next((run / "cache").glob("scores-*.jsonl")).read_text().splitlines()
    ]
    assert len(scored) == len(set(scored)) == 30  # nothing evaluated twice, nothing lost
    name = optuna.get_all_study_names(open_storage(None, run))[0]
    evaluated = [
        t
        for t in _trials(run, name)
        if t.state.name == "COMPLETE" and t.user_attrs.get("evaluated")
    ]
    assert len(evaluated) == 30


# -- drawing feasible configurations --------------------------------------------------------------
@pytest.fixture(scope="module")
def resnet_band():
    space = load_space(SPACES / "resnet50.yaml")
    return space, BandSampler(space, CostModel(ModelBank.build(space, 31)))


def test_band_sampler_draws_where_uniform_draws_never_fit(resnet_band):
    space, band = resnet_band
    high = parse_budget("1/64").macs(band.macs([n - 1 for n in band.sizes]))
    rng, drawn = random.Random(0), []
    for _ in range(10):
        t0 = time.perf_counter()
        x, draws = band.sample(rng, high, low=int(0.6 * high))
        assert time.perf_counter() - t0 < 1.0
        assert 0.6 * high <= band.macs(x) <= high and x not in drawn
        assert draws is None  # no uniform draw fits at 1/64 on ResNet-50: the walk found it
        drawn.append(x)
    assert band.sample(random.Random(0), high, low=int(0.6 * high))[0] == drawn[0]  # seeded


def _small_space():
    """The digits CNN with four widths per unit: 4,096 configurations."""
    return space_from_dict(
        {
            "backbone": "digits_cnn",
            "input": {"channels": 3, "size": 32},
            "defaults": {"widths": [0.25, 0.5, 0.75, 1.0], "divisor": 1, "min_channels": 2},
            "units": {n: {} for n in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc1")},
        }
    )


def test_the_walk_is_uniform_over_the_band():
    """On a space small enough to list, the walk's draws match the uniform distribution."""
    space = _small_space()
    band = BandSampler(space, CostModel(ModelBank.build(space, 10)), rejection_draws=0)
    high = band.macs([3] * 6) // 4
    inside = [x for x in itertools.product(range(4), repeat=6) if band.macs(x) <= high]
    rng = random.Random(1)
    counts = Counter(band.chain(rng, high) for _ in range(3000))
    assert set(counts) <= set(inside)
    expected = 3000 / len(inside)
    chi2 = sum((counts.get(x, 0) - expected) ** 2 / expected for x in inside)
    assert chi2 < 2 * len(inside), (chi2, len(inside))  # chi-square with len-1 dof: mean len-1


def test_repair_keeps_the_shape_and_uses_the_budget(resnet_band):
    space, band = resnet_band
    high = parse_budget("1/16").macs(band.macs([n - 1 for n in band.sizes]))
    rng = random.Random(2)
    for _ in range(5):
        x = tuple(rng.randrange(n) for n in band.sizes)
        y = repair(band, x, high)
        assert band.macs(y) <= high and all(b <= a for a, b in zip(x, y))
        for u in range(len(y)):  # nothing more fits without going above the proposal
            if y[u] < x[u]:
                z = list(y)
                z[u] += 1
                assert band.macs(z) > high


def test_macs_of_indices_equals_macs(resnet_band):
    space, band = resnet_band
    rng = random.Random(3)
    for _ in range(50):
        config = space.sample(rng)
        assert band.cost.macs_of_indices(space.to_indices(config)) == band.cost.macs(config)
