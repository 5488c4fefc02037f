"""optuna-dashboard (the ``dashboard`` extra) reads a run's study journal live: started on
loopback against it, its HTTP API lists the run's studies with their trials."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from slimda_nas.cli import main
from tests.conftest import copy_run, require, search_args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)


def test_dashboard_reads_the_studies(tiny_run_dir, tmp_path):
    exe = shutil.which("optuna-dashboard") or str(Path(sys.executable).parent / "optuna-dashboard")
    require(Path(exe).exists(), "needs the dashboard extra (pip install slimda-nas[dashboard])")
    run = copy_run(tiny_run_dir, tmp_path / "run")
    assert (
        main(search_args(run, "--budget", "1/4,1/16", "--trials", "3", "--sampler", "random")) == 0
    )
    port = _free_port()
    proc = subprocess.Popen(
        [exe, str(run / "study.journal"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        studies = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
        names = sorted(s["study_name"] for s in studies)
        assert len(names) == 2 and all(n.startswith("random-1-") for n in names), names
        attrs = {a["key"]: a["value"] for a in studies[0]["user_attrs"]}
        assert attrs["sampler"] == "random" and attrs["budget"] in ("1/4", "1/16")
        one = _get(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}")
        done = [t for t in one["trials"] if t["state"] == "Complete"]
        assert len(done) >= 3
    finally:
        proc.terminate()
        proc.wait(timeout=30)
