"""Every benchmark's ``--tiny`` mode runs (seconds, synthetic images), so a package change that
breaks a benchmark fails here rather than on the next long measurement."""

from __future__ import annotations

import importlib
import json

import pytest

from benchmarks import _common as bc

# what each script leaves under the tiny folder (results never go to benchmarks/results)
WRITES = {
    "train_digits_banks": ["results/digits_banks.json"],
    "seed_spread": ["results/seeds.json"],
    "budget_table": ["results/budgets_tiny.json"],
    "search_comparison": ["results/search_tiny.json", "results/search_tiny.png"],
    "speed": ["results/speed_cpu.json"],
    "office31_cpu": ["results/office31_cpu.json"],
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
