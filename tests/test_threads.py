"""The thread policy of the command line (slimda_nas/_threads.py)."""

from __future__ import annotations

import os

import pytest
import torch

from slimda_nas import _threads
from slimda_nas.cli import main
from slimda_nas.errors import UserError


def test_threads_option_then_environment_then_free_cores(monkeypatch):
    monkeypatch.setattr(_threads, "usable_cores", lambda: 4)  # whatever this machine has
    monkeypatch.setenv(_threads.ENV_THREADS, "3")
    assert _threads.choose_threads(5) == (5, "--threads")
    assert _threads.choose_threads(None)[0] == 3
    monkeypatch.delenv(_threads.ENV_THREADS)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.2, 0.0, 0.0))
    assert _threads.choose_threads(None)[0] == 3  # one core busy
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert _threads.free_cores() == 1  # never below one
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert _threads.free_cores() == 4
    for bad in ("0", "two"):
        monkeypatch.setenv(_threads.ENV_THREADS, bad)
        with pytest.raises(UserError, match="SLIMDA_NAS_THREADS: expected a positive integer"):
            _threads.choose_threads(None)
    monkeypatch.setenv(_threads.ENV_THREADS, "17")  # 4 per core at most
    with pytest.raises(UserError, match=r"SLIMDA_NAS_THREADS: expected at most 16 \(4 per core"):
        _threads.choose_threads(None)
    assert _threads.choose_threads(16)[0] == 16
    with pytest.raises(UserError, match="--threads: expected at most 16"):
        _threads.choose_threads(10_000)


def test_cli_sets_threads_and_gives_them_back(monkeypatch, capsys):
    seen = []

    def summary(args):
        seen.append(torch.get_num_threads())
        raise UserError("stopped here")

    monkeypatch.setattr("slimda_nas.cli.space._summary", summary)
    before = torch.get_num_threads()
    assert main(["space", "validate", "digits_cnn", "--threads", "3"]) == 2
    assert seen == [3] and torch.get_num_threads() == before
    assert "stopped here" in capsys.readouterr().err
    assert main(["space", "validate", "digits_cnn", "--threads", "0"]) == 2
    assert "--threads: expected a positive integer, got 0" in capsys.readouterr().err
    assert os.environ.get("OMP_WAIT_POLICY")  # set (PASSIVE) unless the user chose one
