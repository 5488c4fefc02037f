"""Shared fixtures: where the repository, the shipped spaces and the real data are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SPACES = REPO / "search_spaces"
CONFIGS = REPO / "configs"

torch.set_num_threads(min(2, os.cpu_count() or 1))
# A relative $SLIMDA_NAS_DATA (the README's ../shared/data) means relative to where pytest was
# started: fixed here, since tests that chdir into a temporary folder would lose it.
if os.environ.get("SLIMDA_NAS_DATA"):
    os.environ["SLIMDA_NAS_DATA"] = str(Path(os.environ["SLIMDA_NAS_DATA"]).resolve())


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a ``python -m slimda_nas`` subprocess: this checkout, one thread."""
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def cli_popen(args: list[str], env: dict | None = None, stdout=subprocess.PIPE):
    """``python -m slimda_nas ARGS`` started in a fresh process, as a user would (stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "slimda_nas", *args],
        cwd=REPO,
        env=cli_env(**(env or {})),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def search_args(run: Path, *extra: str) -> list[str]:
    """``search`` on ``run`` with tiny scoring subsets and no report."""
    tiny = ["--calibration-images", "8", "--scoring-images", "8", "--no-report"]
    return ["search", "--run", str(run), *tiny, *extra]


def require(condition: bool, reason: str) -> None:
    """Skip a test whose real part (a browser, a runtime) is missing here; in CI
    (``SLIMDA_NAS_CI`` set by ``.ci/run``, which installs them) fail instead, so that what CI
    claims to check is never skipped silently."""
    if condition:
        return
    if os.environ.get("SLIMDA_NAS_CI"):
        pytest.fail(f"CI must have this: {reason}")
    pytest.skip(reason)


def require_module(name: str, reason: str):
    """The module ``name``, or :func:`require`'s skip / CI failure."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        require(False, reason)


def real_data_root() -> Path:
    """The data root of the tests: $SLIMDA_NAS_DATA, else ../shared/data next to the repository."""
    env = os.environ.get("SLIMDA_NAS_DATA")
    return Path(env) if env else (REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = real_data_root()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set SLIMDA_NAS_DATA)")
    return root


def make_folder_domains(root: Path, domains=("A", "B"), classes=3, per_class=6, size=40) -> Path:
    """Tiny image-folder domains (``root/<domain>/<class>/*.png``), the benchmarks' tiny data."""
    from benchmarks._common import tiny_domains

    return tiny_domains(root, domains, classes, per_class, size)


@pytest.fixture
def tiny_task(tmp_path) -> str:
    """A source->target task over two tiny synthetic folder domains."""
    root = make_folder_domains(tmp_path / "tiny")
    return f"folder:{root / 'A'}->folder:{root / 'B'}"


def shrunk_space(space, size: int):
    """``space`` with images stored at ``size`` px and its resolutions scaled alike: counting
    and slicing rules do not depend on the size, and small inputs keep tests fast."""
    from slimda_nas.space import space_from_dict

    raw = space.to_dict()
    sizes = raw["input"].get("sizes")
    raw["input"]["size"] = size
    if sizes:
        raw["input"]["sizes"] = sorted({max(8, round(s * size / space.input_size)) for s in sizes})
    return space_from_dict(raw, source=space.source)


def tiny_elastic_space(folder: Path, size: int = 32) -> Path:
    """The shipped elastic Lite0 space (widths, stage depths, resolutions) stored at ``size`` px,
    written to ``folder``: small enough for a tiny training run."""
    import yaml

    from slimda_nas.space import load_space

    space = shrunk_space(load_space(SPACES / "efficientnet_lite0_elastic.yaml"), size)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lite0_elastic_tiny.yaml"
    path.write_text(yaml.safe_dump(space.to_dict(), sort_keys=False))
    return path


def tiny_run_config(tmp_path: Path, task: str, **changes):
    from benchmarks._common import TINY_RUN
    from slimda_nas.train.config import RunConfig

    values = dict(
        name="tiny",
        task=task,
        space=str(SPACES / "digits_cnn.yaml"),
        **{**TINY_RUN, "iterations": 8, "eval_every": 4},
        out=str(tmp_path / "run"),
    )
    values.update(changes)
    return RunConfig(**values).replace()


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory) -> Path:
    """A finished tiny training run (trained once per test session)."""
    from slimda_nas.train import train_bank

    base = tmp_path_factory.mktemp("tiny_run")
    root = make_folder_domains(base / "tiny")
    cfg = tiny_run_config(base, f"folder:{root / 'A'}->folder:{root / 'B'}", iterations=6)
    train_bank(cfg, show_progress=False)
    return cfg.run_dir


def copy_run(run_dir: Path, dest: Path) -> Path:
    """A private copy of a run folder, for tests that write into it."""
    import shutil

    shutil.copytree(run_dir, dest)
    return dest
