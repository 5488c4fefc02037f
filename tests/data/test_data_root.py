"""Data root resolution: option > $SLIMDA_NAS_DATA > cache folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimda_nas.data import load_task, resolve_data_root
from slimda_nas.errors import DataError


def test_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opt, env, xdg = tmp_path / "opt", tmp_path / "env", tmp_path / "xdg"
    opt.mkdir()
    env.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    monkeypatch.setenv("SLIMDA_NAS_DATA", str(env))
    assert resolve_data_root(opt) == opt
    assert resolve_data_root(str(opt)) == opt
    assert resolve_data_root(None) == env
    monkeypatch.delenv("SLIMDA_NAS_DATA")
    assert resolve_data_root(None) == xdg / "slimda-nas" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_data_root(None) == Path.home() / ".cache" / "slimda-nas" / "data"


def test_missing_explicit_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="nope: data root not found .*--data-root"):
        resolve_data_root(missing)
    monkeypatch.setenv("SLIMDA_NAS_DATA", str(missing))
    with pytest.raises(DataError, match=r"nope: data root not found .*\$SLIMDA_NAS_DATA"):
        resolve_data_root(None)


def test_load_from_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=f"{missing}: data root not found"):
        load_task("office31:amazon->webcam", missing, 224)
    with pytest.raises(DataError, match=str(missing / "digits" / "mnist.npz")):
        load_task("mnist->usps", missing, 32, download=False)
