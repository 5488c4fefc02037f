"""Batch-1 latency: one record per runtime, and a one-thread figure beside a many-thread one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimda_nas.deploy import latency as L


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _plain() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 4))


def _timed(rec: dict) -> None:
    t = rec["pytorch"]
    assert 0 < t["p10_ms"] <= t["median_ms"] <= t["p90_ms"] and t["runs"] >= L.MIN_RUNS


def test_many_threads_are_measured_again_with_one(two_threads, monkeypatch):
    seen = []
    real = L.time_runner
    monkeypatch.setattr(
        L, "time_runner", lambda run, x: seen.append(torch.get_num_threads()) or real(run, x)
    )
    rec = L.measure_latency(_plain(), (3, 2, 2))
    _timed(rec)
    _timed(rec["one_thread"])
    assert seen[0] == 2 and 1 in seen  # PyTorch timed at 2 threads, then at 1
    assert torch.get_num_threads() == 2  # the caller's setting is restored
    assert L.one_thread_text(rec).startswith(" (one thread: PyTorch ")


def test_one_thread_is_not_measured_twice():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rec = L.measure_latency(_plain(), (3, 2, 2))
    finally:
        torch.set_num_threads(before)
    assert "one_thread" not in rec and L.one_thread_text(rec) == ""


def test_format_ms_says_dash_for_a_missing_runtime():
    assert L.format_ms({"onnxruntime": None}, "onnxruntime") == "-"
    assert L.format_ms({"pytorch": {"median_ms": 0.37412}}, "pytorch") == "0.374 ms"
    assert L.format_ms(None, "pytorch") == "-"
