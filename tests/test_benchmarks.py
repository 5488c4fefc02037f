"""Every benchmark's ``--tiny`` mode runs (seconds, synthetic images), so a package change that
breaks a benchmark fails here rather than on the next long measurement."""

from __future__ import annotations

import argparse
import importlib
import json
from types import SimpleNamespace

import pytest

from benchmarks import _common as bc

# what each script leaves under the tiny folder (results never go to benchmarks/results)
WRITES = {
    "train_digits_banks": ["results/digits_banks.json"],
    "seed_spread": ["results/seeds.json"],
    "budget_table": ["results/budgets_tiny.json"],
    "search_comparison": ["results/search_tiny.json", "results/search_tiny.png"],
    "speed": ["results/speed_cpu.json"],
    "office31_cpu": ["results/office31_cpu.json", "results/office31_cpu_curves.png"],
    "office31_gpu": ["gpu/step_times.json", "gpu/candidate_speed.json", "gpu/budgets.json"],
    "loader_throughput": [],
    "shared_cores": ["results/shared_cores.json"],
}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """One folder for every script: the tiny banks train once and are reused."""
    return tmp_path_factory.mktemp("bench")


def test_every_script_is_listed():
    scripts = {p.stem for p in (bc.REPO / "benchmarks").glob("*.py") if not p.stem.startswith("_")}
    assert scripts == set(bc.SCRIPTS) == set(WRITES)


@pytest.mark.parametrize("name", bc.SCRIPTS)
def test_tiny_mode_runs(name, tiny_dir, capsys):
    before = {p: p.stat().st_mtime for p in (bc.REPO / "benchmarks" / "results").rglob("*")}
    importlib.import_module(f"benchmarks.{name}").main(["--tiny", str(tiny_dir)])
    assert capsys.readouterr().out.strip()
    for rel in WRITES[name]:
        path = tiny_dir / rel
        assert path.is_file() and path.stat().st_size > 0, rel
        if path.suffix == ".json":
            assert json.loads(path.read_text())
    after = {p: p.stat().st_mtime for p in (bc.REPO / "benchmarks" / "results").rglob("*")}
    assert after == before  # the committed results are untouched


def test_office31_cpu_table_measures_only_the_budgets_it_lacks(monkeypatch, tmp_path):
    """A finished bank's table gains the budgets its arm asks for; rows already measured stay."""
    office31 = importlib.import_module("benchmarks.office31_cpu")
    asked = []

    def measured(run_dir, trials, n_random, full_width, budgets, settings):
        asked.append(list(budgets))
        return {"largest": 0.5, "budgets": {b: {"pick": 0.1} for b in budgets}}

    monkeypatch.setattr(office31, "budget_table", measured)
    args = argparse.Namespace(arm="elastic", trials=3, random=2)
    entry = {"table": {"largest": 0.6, "budgets": {"1/16": {"pick": 0.3}}}}
    office31.add_table(entry, tmp_path, args, None)
    assert asked == [["1/4", "1/8", "1/32", "1/64"]]
    assert entry["table"]["largest"] == 0.6 and entry["table"]["budgets"]["1/16"] == {"pick": 0.3}
    office31.add_table(entry, tmp_path, args, None)  # nothing left to measure
    office31.add_table(entry, tmp_path, argparse.Namespace(arm="symnet", trials=3, random=2), None)
    assert len(asked) == 1


def test_office31_cpu_curve_restarts_with_its_bank(monkeypatch, tmp_path):
    """Points of a bank no longer on disk (a fresh clone trains it from iteration 0) are measured
    again; a bank resumed from its checkpoint keeps its points and seconds."""
    office31 = importlib.import_module("benchmarks.office31_cpu")
    chunks = []

    def train_bank(cfg, show_progress, stop_after, adapted_from):
        start, end = chunks.pop(0)
        adopted = adapted_from if start and adapted_from else None
        return SimpleNamespace(resumed_from=start, iterations=end, bank=None, adapted_from=adopted)

    monkeypatch.setattr(office31.sn, "train_bank", train_bank)
    probe = SimpleNamespace(measure=lambda bank: {"largest": 0.5})
    monkeypatch.setattr(office31, "CurveProbe", lambda cfg: probe)
    cfg = SimpleNamespace(total_iterations=4, run_dir=tmp_path / "runs" / "bank")
    out = tmp_path / "results.json"

    def stale(i):
        return {"iteration": i, "train_seconds": 900.0 * i, "largest": 0.1}

    results = {"gone": {"curve": [stale(2), stale(4)], "train_seconds": 3600.0}}
    chunks[:] = [(0, 2), (2, 4)]
    office31.train_with_curve(cfg, 2, results, "gone", out)
    gone = results["gone"]["curve"]
    assert [(p["iteration"], p["largest"]) for p in gone] == [(2, 0.5), (4, 0.5)]
    assert results["gone"]["train_seconds"] < 60

    results["kept"] = {"curve": [stale(2)], "train_seconds": 1800.0}
    chunks[:] = [(2, 4)]
    office31.train_with_curve(cfg, 2, results, "kept", out)
    assert [p["largest"] for p in results["kept"]["curve"]] == [0.1, 0.5]
    assert results["kept"]["train_seconds"] >= 1800.0
    assert set(json.loads(out.read_text())) == {"gone", "kept"}

    # started from another bank's adaptation at iteration 2: its points and seconds up to there
    results["adopted"] = {"curve": [stale(2), stale(4)], "train_seconds": 3600.0}
    results["donor"] = {"curve": [stale(2), stale(4)], "train_seconds": 3600.0}
    chunks[:] = [(2, 4)]
    office31.train_with_curve(cfg, 2, results, "adopted", out, donor="donor")
    adopted = results["adopted"]
    assert [p["largest"] for p in adopted["curve"]] == [0.1, 0.5]
    assert 1800.0 <= adopted["train_seconds"] < 1860 and adopted["adapted_from"] == "donor"


# Training hashes of the office31_cpu banks BENCHMARKS.md section 12 reports (their checkpoints
# hold them): a change to a shipped config or to an arm must leave them, so that their commands
# resume and re-measure the same banks. The recipe each arm pins is in the script.
OFFICE31_MEASURED = {
    ("aw", "staged"): "7dd558e91190e3ee",
    ("aw", "elastic"): "86ea8b69f2fdc12c",
    ("aw", "elastic_macs"): "03c4cb9094bdf673",
    ("aw", "elastic_long_adaptation"): "2a01cb6fc17ab749",
    ("aw", "elastic_adapting_largest"): "83d8c14361ed682b",
    ("aw", "source_only"): "9c9a25806b232b0b",
    ("aw", "symnet"): "248c94b9af7446c6",
    ("da", "staged"): "7459b1843dbcd7df",
    ("da", "elastic_long_adaptation"): "0925c95a35048f52",
    ("da", "source_only"): "410128c1c310be70",
    ("da", "symnet"): "844cbd52b682e516",
}


@pytest.mark.parametrize("task, arm", sorted(OFFICE31_MEASURED))
def test_office31_cpu_measured_arms_keep_their_banks(task, arm):
    office31 = importlib.import_module("benchmarks.office31_cpu")
    cfg = office31.arm_config(task, arm, 0, None)
    assert cfg.training_hash() == OFFICE31_MEASURED[task, arm]
