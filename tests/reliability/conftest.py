"""Helpers of the reliability suite: file hashes, CLI runs, a throw-away PostgreSQL server."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from slimda_nas.cli import main
from tests.conftest import REPO, cli_env, copy_run, search_args


def tree_hashes(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (what must be byte-identical after a failure)."""
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def cli(args: list[str], cwd: Path | None = None, env: dict | None = None, timeout: float = 300):
    """Run ``python -m slimda_nas ARGS`` in a fresh process (as a user would)."""
    return subprocess.run(
        [sys.executable, "-m", "slimda_nas", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=cli_env(**(env or {})),
        timeout=timeout,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_url():
    """$SLIMDA_NAS_TEST_POSTGRES_URL, else a server started from Debian's binaries, else skip."""
    url = os.environ.get("SLIMDA_NAS_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    pg = _pg_bin()
    if pg is None:
        pytest.skip(
            "no PostgreSQL: set SLIMDA_NAS_TEST_POSTGRES_URL or install Debian's postgresql"
        )
    data = Path(tempfile.mkdtemp(prefix="slimda-pg-"))
    port = _free_port()
    as_pg = ["su", "postgres", "-s", "/bin/sh", "-c"] if os.geteuid() == 0 else ["sh", "-c"]
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")

    def sh(cmd):
        return subprocess.run([*as_pg, cmd], capture_output=True, text=True, timeout=120)

    r = sh(f"{pg}/initdb -D {data} -A trust -U postgres")
    if r.returncode:
        pytest.skip(f"initdb failed: {r.stderr[-300:]}")
    r = sh(
        f"{pg}/pg_ctl -D {data} -o '-p {port} -k {data} -c listen_addresses=127.0.0.1' -l {data}/log -w start"
    )
    if r.returncode:
        pytest.skip(f"PostgreSQL did not start: {r.stderr[-300:]}")
    sh(f"{pg}/createdb -h 127.0.0.1 -p {port} -U postgres slimda")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/slimda"
    finally:
        sh(f"{pg}/pg_ctl -D {data} -m immediate stop")
        time.sleep(0.5)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def searched(tiny_run_dir, tmp_path_factory) -> Path:
    run = copy_run(tiny_run_dir, tmp_path_factory.mktemp("searched") / "run")
    args = ["--budget", "1/4", "--trials", "3", "--sampler", "random"]
    assert main([*search_args(run, *args)]) == 0
    return run


@pytest.fixture
def R(searched, tmp_path) -> Path:
    """A private copy of a tiny run searched once at 1/4 (random sampler, 3 trials)."""
    return copy_run(searched, tmp_path / "R")


def in_process(argv, capsys) -> tuple[int, str]:
    """``slimda-nas ARGV`` in this process: its exit code and its stderr."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err.strip()


def one_line_error(code: int, err: str, *expected: str) -> None:
    """A user error as the CLI must print it: exit 2, one line holding every ``expected``."""
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], lines[0]
