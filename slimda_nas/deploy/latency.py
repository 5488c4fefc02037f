"""Latency at batch 1, measured on this machine: what a device feels, beside the MACs the
search constrains. The numbers belong to the machine they were taken on (its CPU, cores and
thread settings are recorded with them); they are cached per configuration in the run folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from slimda_nas._io import write_json
from slimda_nas.deploy.runtimes import (
    Runner,
    RuntimeMissing,
    onnx_bytes,
    onnx_runner,
    onnxruntime,
)

WARMUP_S = 0.2
MEASURE_S = 1.0
MIN_RUNS, MAX_RUNS = 20, 2000


def machine() -> dict[str, Any]:
    """The machine the numbers belong to."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ort = onnxruntime()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__ if ort else None,
    }


def time_runner(run: Runner, example: Tensor) -> dict[str, float]:
    """Median (and 10th / 90th percentile) milliseconds of ``run(example)`` after a warm-up."""
    with torch.no_grad():
        t_end = time.perf_counter() + WARMUP_S
        while time.perf_counter() < t_end:
            run(example)
        times: list[float] = []
        t_end = time.perf_counter() + MEASURE_S
        while len(times) < MIN_RUNS or (time.perf_counter() < t_end and len(times) < MAX_RUNS):
            t0 = time.perf_counter()
            run(example)
            times.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(times, n=10)
    return {
        "median_ms": round(statistics.median(times), 4),
        "p10_ms": round(q[0], 4),
        "p90_ms": round(q[-1], 4),
        "runs": len(times),
    }


def measure_latency(plain: nn.Module, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """Batch-1 latency of a plain (materialized, CPU, eval-mode) sub-network under PyTorch and
    under ONNX Runtime (None, with the reason, where ONNX cannot run here), with this process's
    threads and, where that is more than one, again with one thread under ``"one_thread"``:
    many threads on a busy machine measure the contention, one thread the model."""
    plain = plain.cpu().eval()
    missing = None
    if onnxruntime() is None:
        missing = "onnxruntime is not installed"
    else:
        try:
            onnx = onnx_bytes(plain, torch.zeros(2, *input_shape))  # exported once, timed twice
        except RuntimeMissing as e:
            missing = str(e)
    with tempfile.TemporaryDirectory() as tmp:  # ORT reads a path as fast as bytes
        path = None
        if missing is None:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(onnx)
        out: dict[str, Any] = {"batch": 1, **_runtimes(plain, input_shape, path, missing, None)}
        if torch.get_num_threads() > 1:
            out["one_thread"] = _runtimes(plain, input_shape, path, missing, 1)
    return out


def _runtimes(
    plain: nn.Module, input_shape, onnx_path: Path | None, missing: str | None, threads
) -> dict[str, Any]:
    example = torch.zeros(1, *input_shape)
    with _torch_threads(threads):
        out: dict[str, Any] = {"pytorch": time_runner(plain, example)}
    if onnx_path is None:
        return {**out, "onnxruntime": None, "onnxruntime_missing": missing}
    out["onnxruntime"] = time_runner(onnx_runner(str(onnx_path), threads), example)
    return out


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def format_ms(rec: Mapping | None, runtime: str) -> str:
    """``"0.37 ms"`` for one runtime's median in a latency record, ``"-"`` where it has none."""
    r = (rec or {}).get(runtime)
    return "-" if r is None else f"{r['median_ms']:.3g} ms"


def one_thread_text(rec: Mapping) -> str:
    """`` (one thread: PyTorch .., ONNX Runtime ..)`` where the record has one-thread figures."""
    one = rec.get("one_thread")
    if not one:
        return ""
    return (
        f" (one thread: PyTorch {format_ms(one, 'pytorch')}, "
        f"ONNX Runtime {format_ms(one, 'onnxruntime')})"
    )


NOTE = (
    "batch-1 latency measured on this machine (see 'machine'); another CPU, thread count or "
    "runtime gives other numbers: measure on the target device before relying on them"
)


@dataclass(frozen=True, kw_only=True)
class LatencyRecord:
    """Batch-1 latencies of named models and the machine they were taken on, as a report or
    an export stores them (``{"machine", "note", name: latency}``). A model's latency is read
    with :func:`format_ms` and :func:`one_thread_text`."""

    machine: dict[str, Any]
    note: str = NOTE
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, name: str) -> dict[str, Any] | None:
        return self.models.get(name)

    @property
    def where(self) -> str:
        """``"<cpu>, <n> threads"``: the machine in a caption."""
        return f"{self.machine.get('cpu', '?')}, {self.machine.get('threads', '?')} threads"

    @property
    def machine_text(self) -> str:
        """The machine in full: CPU, cores, threads and runtime versions."""
        m = self.machine
        return (
            f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('threads', '?')} threads, "
            f"torch {m.get('torch', '?')}, onnxruntime {m.get('onnxruntime') or 'not installed'}"
        )

    def onnx_missing(self, name: str) -> str | None:
        """Why ONNX Runtime did not time model ``name`` (None: it did)."""
        return (self.get(name) or {}).get("onnxruntime_missing")

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "note": self.note, **self.models}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LatencyRecord:
        models = {k: dict(v) for k, v in raw.items() if k not in ("machine", "note") and v}
        return cls(
            machine=dict(raw.get("machine") or {}), note=str(raw.get("note", NOTE)), models=models
        )


def latency_record(
    run_dir: Path, checkpoint: str, models: Mapping[str, tuple[Mapping, Any]], input_shape
) -> LatencyRecord:
    """The latency of each ``name -> (config, build)`` of ``models``, where ``build()`` gives
    the plain sub-network (called only when its latency is not cached). ``input_shape``: one
    input's shape, or a function of the configuration (its resolution)."""
    cache = LatencyCache(run_dir, checkpoint)
    out = {}
    for name, (config, build) in models.items():
        shape = input_shape(config) if callable(input_shape) else input_shape
        rec = cache.get(config, lambda b=build, x=shape: measure_latency(b(), x))
        out[name] = {k: v for k, v in rec.items() if k != "machine"}
    return LatencyRecord(machine=machine(), models=out)


class LatencyCache:
    """Measured latencies of one bank's configurations on this machine (``RUN/cache``): a
    report or an export measures each configuration once per machine and thread setting."""

    def __init__(self, run_dir: Path, checkpoint: str) -> None:
        key = json.dumps({**machine(), "checkpoint": checkpoint}, sort_keys=True)
        self.path = (
            Path(run_dir)
            / "cache"
            / f"latency-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"
        )
        self._known: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._known is None:
            try:
                raw = json.loads(self.path.read_text())
                self._known = raw if isinstance(raw, dict) else {}
            except (OSError, ValueError):
                self._known = {}  # a damaged cache is measured again
        return self._known

    def get(self, config: Mapping, measure) -> dict[str, Any]:
        """The latency record of ``config``; ``measure()`` computes it when unknown."""
        known = self._load()
        key = json.dumps(dict(config), sort_keys=True)
        if key not in known:
            known[key] = {**measure(), "machine": machine()}
            try:
                write_json(self.path, known)
            except OSError:
                pass  # read-only run folder: measured again next time
        return known[key]
