"""The package works outside its checkout: a wheel built from the repository, installed in a
fresh virtual environment, finds its shipped spaces and configs from an empty folder."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO


def _run(args: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> tuple[Path, dict]:
    """(bin folder, environment) of a fresh venv holding only the wheel; the dependencies come
    from this interpreter's site-packages, read as plain paths (no editable finder of ours)."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            dist,
            REPO,
        ],
        cwd=base,
    )
    wheel = next(dist.glob("slimda_nas-*.whl"))
    target = base / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            wheel,
        ],
        cwd=base,
    )
    site = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], base
        ).stdout.strip()
    )
    # A .pth line adds the outer site-packages as a path; the .pth files inside it (our
    # editable install among them) are not processed, so only the wheel provides slimda_nas.
    (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"
    return target / "bin", env


def test_wheel_ships_its_spaces_and_configs(wheel_env, tmp_path):
    bin_dir, env = wheel_env
    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run(
        [
            bin_dir / "python",
            "-c",
            "import slimda_nas, slimda_nas._shipped as s; print(slimda_nas.__file__); "
            "print(sorted(s.shipped_configs())); print(sorted(s.shipped_spaces()))",
        ],
        cwd=empty,
        env=env,
    ).stdout.splitlines()
    assert str(bin_dir.parent) in where[0], where  # the wheel's copy, not the checkout
    assert "usps_mnist" in where[1] and "digits_cnn" in where[2]
    shown = _run([bin_dir / "slimda-nas", "space", "show", "digits_cnn"], empty, env).stdout
    assert "conv1" in shown and "30,051,840" in shown
    helped = _run([bin_dir / "slimda-nas", "search", "--help"], empty, env).stdout
    assert "--budget" in helped and "--sampler" in helped
    trained = _run([bin_dir / "slimda-nas", "train", "--help"], empty, env).stdout
    assert "usps_mnist" in trained  # the shipped configs, by name
    assert not any(empty.iterdir())  # nothing written where it ran
