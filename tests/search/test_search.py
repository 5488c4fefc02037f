"""The search: constraint honoured, infeasible proposals free, duplicates cached, seeded runs
repeat, several processes share one study, a killed search resumes without repeats."""

from __future__ import annotations

import json
import signal
import time

import optuna
import pytest

from slimda_nas.cost.budget import parse_budget, parse_budgets
from slimda_nas.cost.macs import CostModel, thop_profile
from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.search.runner import SearchOptions, run_search
from slimda_nas.search.storage import open_storage
from slimda_nas.train.run import load_run
from tests.conftest import cli_popen, copy_run, search_args

SMALL = EvalSettings(calibration_images=8, scoring_images=8, batch_size=8)


@pytest.fixture
def run_dir(tiny_run_dir, tmp_path):
    return copy_run(tiny_run_dir, tmp_path / "run")


class CountingEvaluator(Evaluator):
    calls: list

    def score(self, config):
        self.calls.append(dict(config))
        return super().score(config)


def _evaluator(run_dir):
    ev = CountingEvaluator(load_run(run_dir, device="cpu"), SMALL)
    ev.calls = []
    return ev


def _trials(run_dir, name):
    storage = open_storage(None, run_dir)
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random", "uniform", "greedy"])
def test_every_sampler_honours_the_budget(run_dir, sampler):
    ev = _evaluator(run_dir)
    budgets = parse_budgets("1/4,1/16")
    opts = SearchOptions(budgets=budgets, sampler=sampler, evaluations=8, settings=SMALL)
    result = run_search(ev, opts)
    assert len(result.picks) == 2
    for choice in result.picks:
        plain = ev.run.bank.materialize(choice.point.config)
        macs, _ = thop_profile(plain, ev.run.space.input_shape)
        assert macs == choice.point.macs <= choice.budget.macs
    for s in result.studies:
        evaluated = [t for t in _trials(run_dir, s.name) if t.user_attrs.get("evaluated")]
        assert len(evaluated) <= 8
        if sampler != "greedy":  # greedy slimming scores the wider models on its path by design
            # infeasible proposals never cost a UPEM evaluation
            assert all(t.user_attrs["macs"] <= s.budget.macs for t in evaluated)
    # each UPEM evaluation is a distinct feasible configuration
    keys = [json.dumps(c, sort_keys=True) for c in ev.calls]
    assert len(keys) == len(set(keys))


def test_infeasible_trials_skip_upem_and_duplicates_are_cached(run_dir):
    ev = _evaluator(run_dir)
    opts = SearchOptions(  # the sampler's raw proposals (repairs: tests/search/test_scale.py)
        budgets=[parse_budget("1/16")],
        sampler="nsga2",
        evaluations=10,
        settings=SMALL,
        repair=False,
    )
    result = run_search(ev, opts)
    trials = [t for t in _trials(run_dir, result.studies[0].name) if t.state.name == "COMPLETE"]
    infeasible = [t for t in trials if t.constraints["macs"] > 0]
    assert infeasible, "expected some infeasible NSGA-II proposals at 1/16"
    assert all(
        not t.user_attrs.get("evaluated") and "upem" not in t.user_attrs for t in infeasible
    )
    assert len(ev.calls) == sum(bool(t.user_attrs.get("evaluated")) for t in trials) == 10
    assert 0 < result.studies[0].feasible_fraction < 1
    assert result.studies[0].requested == 10 and not result.studies[0].short


def test_a_budget_holding_one_configuration_evaluates_it(run_dir):
    from slimda_nas.cost.budget import Budget
    from slimda_nas.errors import Notice

    ev = _evaluator(run_dir)
    smallest = ev.cost.macs(ev.run.space.smallest())
    only_smallest = Budget("smallest", absolute=smallest)  # one feasible configuration
    opts = SearchOptions(budgets=[only_smallest], sampler="nsga2", evaluations=3, settings=SMALL)
    with pytest.warns(Notice, match="only 1 configuration fits .* nsga2 evaluates it"):
        study = run_search(ev, opts).studies[0]
    assert study.evaluations == study.requested == 1 and not study.short
    assert study.points[-1].config == ev.run.space.smallest()


def test_a_sampler_short_of_new_proposals_is_reported(run_dir):
    from slimda_nas.cost.budget import Budget

    ev = _evaluator(run_dir)
    smallest = ev.cost.macs(ev.run.space.smallest())
    opts = SearchOptions(
        budgets=[Budget("smallest", absolute=smallest)],
        sampler="nsga2",
        evaluations=3,
        settings=SMALL,
        repair=False,  # raw proposals: 1 in 10^6 fits
    )
    study = run_search(ev, opts).studies[0]
    assert study.evaluations < study.requested == 1 and study.short


def test_the_cli_says_when_a_sampler_fell_short(run_dir, capsys):
    from slimda_nas.cli import main

    run = load_run(run_dir, device="cpu")
    smallest = CostModel(run.bank).macs(run.space.smallest())
    args = ["search", "--run", str(run_dir), "--budget", f"{smallest / 1000}K", "--no-report"]
    args += ["--sampler", "nsga2", "--trials", "3", "--device", "cpu", "--no-repair"]
    args += ["--calibration-images", "8", "--scoring-images", "8", "--batch-size", "4"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "search: note: budget" in captured.err and "only 1 configuration fits" in captured.err
    out = " ".join(captured.out.split())
    assert "note: nsga2 @" in out and "0 of 1 evaluations" in out


def test_unreachable_budget_fails_at_once(run_dir):
    from slimda_nas.errors import BudgetError

    ev = _evaluator(run_dir)
    with pytest.raises(BudgetError, match=r"below the smallest model's 1/\d+"):
        run_search(
            ev,
            SearchOptions(
                budgets=[parse_budget("1/10000")], sampler="tpe", evaluations=5, settings=SMALL
            ),
        )
    assert ev.calls == []


@pytest.mark.parametrize("sampler", ["tpe", "random", "nsga2"])
def test_seeded_runs_repeat(tiny_run_dir, tmp_path, sampler):
    picks = []
    for copy in ("a", "b"):
        ev = _evaluator(copy_run(tiny_run_dir, tmp_path / copy))
        run_search(
            ev,
            SearchOptions(
                budgets=[parse_budget("1/4")],
                sampler=sampler,
                evaluations=12,
                seed=3,
                settings=SMALL,
            ),
        )
        picks.append(ev.calls)
    assert picks[0] == picks[1]


def test_sqlite_refused_with_several_workers(run_dir):
    from slimda_nas.errors import UserError

    with pytest.raises(UserError, match="SQLite breaks with several worker processes"):
        open_storage(f"sqlite:///{run_dir}/s.db", run_dir, workers=2)


def _cli(args, run_dir, env_extra=None):
    return cli_popen(search_args(run_dir, *args), env=env_extra)


def _study_name(run_dir):
    names = optuna.get_all_study_names(open_storage(None, run_dir))
    assert len(names) == 1
    return names[0]


def test_four_processes_share_one_journal_exactly(run_dir):
    # the same command four times: one study, ranks from the environment
    procs = [
        _cli(
            ["--budget", "1/4", "--sampler", "random", "--trials", "10"],
            run_dir,
            env_extra={"SLIMDA_NAS_WORKER_RANK": str(k)},
        )
        for k in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    trials = _trials(run_dir, _study_name(run_dir))
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    evaluated = [t for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("evaluated")]
    assert len(evaluated) == 10
    assert len({json.dumps(t.user_attrs["config"], sort_keys=True) for t in evaluated}) == 10


def test_workers_option_shares_one_study(run_dir):
    p = _cli(["--budget", "1/4", "--sampler", "tpe", "--trials", "12", "--workers", "3"], run_dir)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-2000:]
    evaluated = [
        t for t in _trials(run_dir, _study_name(run_dir)) if t.user_attrs.get("evaluated")
    ]
    assert len(evaluated) == 12


def test_killed_search_resumes_without_losing_or_repeating(run_dir, tiny_run_dir):
    args = ["--budget", "1/4", "--sampler", "random", "--trials", "14", "--seed", "5"]
    p = _cli(args, run_dir)
    cache = run_dir / "cache"
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once a few evaluations are on disk
        files = list(cache.glob("scores-*.jsonl"))
        if files and files[0].read_text().count("\n") >= 5:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    before = {json.loads(x)["key"] for x in files[0].read_text().splitlines() if x.strip()}
    assert 5 <= len(before) < 14
    p = _cli(args, run_dir)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-2000:]
    lines = [json.loads(x)["key"] for x in files[0].read_text().splitlines() if x.strip()]
    assert len(lines) == len(set(lines)) == 14  # nothing scored twice, nothing lost
    assert before <= set(lines)
    trials = _trials(run_dir, _study_name(run_dir))
    assert (
        sum(bool(t.user_attrs.get("evaluated")) for t in trials if t.state.name == "COMPLETE")
        == 14
    )
    # the result equals an uninterrupted run with the same seed (the random sampler is deterministic)
    fresh = copy_run(tiny_run_dir, run_dir.parent / "fresh")  # the trained run, never searched
    q = _cli(args, fresh)
    q.communicate(timeout=300)
    fresh_keys = [
        json.loads(x)["key"]
        for x in next((fresh / "cache").glob("scores-*.jsonl")).read_text().splitlines()
    ]
    assert sorted(fresh_keys) == sorted(lines)


def test_a_trial_finished_while_judged_dead_is_left_finished(monkeypatch):
    """A starting worker sees an ownerless RUNNING trial that its live worker then finishes."""
    from slimda_nas.search import worker

    study = optuna.create_study()
    trial = study.ask()
    stale = study.get_trials(deepcopy=True)  # seen RUNNING ...
    study.tell(trial, 1.0)  # ... then finished by its worker
    monkeypatch.setattr(study, "get_trials", lambda **_: stale)
    assert worker.fail_dead_trials(study) == 0
    assert study._storage.get_trial(trial._trial_id).state.name == "COMPLETE"


def test_a_floored_sandwich_smallest_is_the_reference_model(run_dir):
    """With ``smallest_budget`` the sandwich trains the widest uniform model within it at every
    step, not the space's narrowest: that model is the "smallest" reference at every budget it
    fits (on Office-31 A->W at 1/64 it scored 63.9% where the uniform model at 1/32, the 1/32
    pick without it, scored 56.1%), and at its own budget it is the uniform one, listed once."""
    import dataclasses

    from slimda_nas.search.record import trial_record
    from slimda_nas.search.worker import reference_configs, sandwich_smallest

    ev = _evaluator(run_dir)
    space, cost = ev.run.space, ev.cost
    assert sandwich_smallest(ev.run, cost) == space.smallest()
    floored_run = dataclasses.replace(ev.run, config=ev.run.config.replace(smallest_budget="1/16"))
    floor = sandwich_smallest(floored_run, cost)
    largest = cost.macs(space.largest())
    assert floor == space.uniform(cost.widest_uniform_ratio(largest // 16))
    assert floor != space.smallest()
    at_quarter = reference_configs(space, cost, largest // 4, floor)
    assert at_quarter["smallest"] == floor and at_quarter["uniform"] != floor
    assert list(reference_configs(space, cost, largest // 16, floor)) == ["uniform"]
    # the search queues it
    floored = CountingEvaluator(floored_run, SMALL)
    floored.calls = []
    budget = parse_budget("1/4")
    opts = SearchOptions(budgets=[budget], sampler="tpe", evaluations=3, settings=SMALL)
    study = run_search(floored, opts).studies[0]
    records = [trial_record(t) for t in _trials(run_dir, study.name) if trial_record(t)]
    assert [(r.proposer, r.config) for r in records[:2]] == [
        ("reference", at_quarter["uniform"]),
        ("reference", floor),
    ]


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random"])
def test_a_budget_study_begins_with_the_reference_models(run_dir, sampler):
    """TPE and NSGA-II evaluate the bank's trained reference models that fit first (the widest
    uniform model, the smallest), so a pick is never worse in UPEM than them; the random
    baseline stays random, and --no-repair keeps the sampler's raw proposals only."""
    from slimda_nas.search.record import trial_record
    from slimda_nas.search.worker import reference_configs

    def proposed(study):
        return [trial_record(t) for t in _trials(run_dir, study.name) if trial_record(t)]

    ev = _evaluator(run_dir)
    budget = parse_budget("1/4")
    refs = reference_configs(ev.run.space, ev.cost, budget.macs(ev.anchor_macs))
    assert set(refs) == {"uniform", "smallest"} and refs["uniform"] != refs["smallest"]
    opts = SearchOptions(budgets=[budget], sampler=sampler, evaluations=4, settings=SMALL)
    result = run_search(ev, opts)
    study = result.studies[0]
    records = proposed(study)
    if sampler == "random":
        assert "reference" not in {r.proposer for r in records}
    else:
        assert [(r.proposer, r.config) for r in records[:2]] == [
            ("reference", refs["uniform"]),
            ("reference", refs["smallest"]),
        ]
        ref_values = [p.value for p in study.points if p.config in refs.values()]
        assert len(ref_values) == 2 and result.picks[0].point.value <= min(ref_values)
    raw = SearchOptions(
        budgets=[budget], sampler=sampler, evaluations=4, settings=SMALL, repair=False, seed=1
    )
    assert "reference" not in {r.proposer for r in proposed(run_search(ev, raw).studies[0])}
