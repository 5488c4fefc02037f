"""Four worker processes on one study in a real PostgreSQL server (how users scale across
machines): exactly the requested evaluations, unique trial numbers, and the Pareto front the
results report is the one the study holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import optuna
import pytest

from slimda_nas.search.record import complete_trials
from slimda_nas.search.storage import open_storage
from slimda_nas.search.studies import StudyRecord, pareto_front
from slimda_nas.train.run import load_run
from tests.conftest import REPO, cli_popen, copy_run, search_args

pytestmark = pytest.mark.postgres


def _workers(run, url, study, extra, n=4):
    args = search_args(run, "--storage", url, "--study-name", study, *extra)
    procs = [cli_popen(args, env={"SLIMDA_NAS_WORKER_RANK": str(rank)}) for rank in range(n)]
    for p in procs:
        _, err = p.communicate(timeout=400)
        assert p.returncode == 0, err[-2000:]


def test_four_workers_on_postgres_share_one_study_exactly(postgres_url, tiny_run_dir, tmp_path):
    run = copy_run(tiny_run_dir, tmp_path / "run")
    study = f"pg-{uuid.uuid4().hex[:8]}"
    _workers(run, postgres_url, study, ["--budget", "1/4", "--sampler", "tpe", "--trials", "12"])
    trials = optuna.load_study(study_name=study, storage=open_storage(postgres_url, run)).trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    evaluated = [t for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("evaluated")]
    assert len(evaluated) == 12
    assert len({t.user_attrs["key"] for t in evaluated}) == 12
    assert not [t for t in trials if t.state.name == "RUNNING"]


def test_four_workers_pareto_front_matches_the_study(postgres_url, tiny_run_dir, tmp_path):
    run = copy_run(tiny_run_dir, tmp_path / "run")
    study = f"pg-front-{uuid.uuid4().hex[:8]}"
    _workers(
        run,
        postgres_url,
        study,
        ["--budget", "1/2,1/4", "--sampler", "nsga2", "--trials", "16", "--multi-objective"],
    )
    s = optuna.load_study(study_name=study, storage=open_storage(postgres_url, run))
    front = pareto_front(StudyRecord.read(s, load_run(run, device="cpu").space).points)
    results = json.loads((run / "search" / "results.json").read_text())
    assert [r["trial"] for r in results["front"]] == [p.trial for p in front]
    assert sum(bool(t.user_attrs.get("evaluated")) for t in complete_trials(s)) == 16
    # Optuna's own view of the front: same (MACs, UPEM) points
    ours = {(float(p.macs), p.value) for p in front}
    theirs = {(t.values[0], t.values[1]) for t in s.best_trials}
    assert ours == theirs


_OPEN = """
import sys, time
from pathlib import Path
from slimda_nas.search.storage import open_storage
while time.time() < float(sys.argv[2]):  # start together: the schema race needs it
    pass
open_storage(sys.argv[1], Path("."), workers=4)
"""


def test_workers_opening_a_fresh_database_together_all_connect(postgres_url):
    """All workers create Optuna's tables at once on a new database; every one must connect."""
    import sqlalchemy

    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    for _ in range(3):
        name = f"fresh_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
        url = postgres_url.rsplit("/", 1)[0] + "/" + name
        start = f"{__import__('time').time() + 3:.3f}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN, url, start],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-1500:]
    admin.dispose()
