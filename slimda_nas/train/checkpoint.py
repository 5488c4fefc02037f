"""Training checkpoints: one state type, written atomically, refused when they belong to another
run or are damaged."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimda_nas._io import atomic_write
from slimda_nas.errors import CheckpointError

CHECKPOINT = "checkpoint.pt"
"""The checkpoint's file name inside a run folder."""
ADAPTED = "adapted.pt"
"""A staged run's checkpoint where its teacher stage begins (``RunConfig.adaptation_hash``): a
run whose config differs only in what acts from there on may start from it."""
FORMAT = "slimda-nas/checkpoint/1"


@dataclass(kw_only=True)
class TrainState:
    """What a checkpoint holds: the bank's weights, what produced them, and (for resuming) the
    optimizer and every rank's data streams and RNG where training stood."""

    model: dict[str, torch.Tensor]
    iteration: int
    config: dict[str, Any]
    space: dict[str, Any]
    space_hash: str
    space_name: str
    backbone: str
    classes: list[str]
    task: str
    method: str
    deploy_head: str
    heads: list[str]
    config_hash: str | None = None
    optimizer: dict[str, Any] | None = None
    ranks: list[dict[str, Any]] | None = None  # per rank: {"rng": ..., "loaders": ...}
    world_size: int = 1
    # tail weight averaging while it runs ({"state": ..., "count": ...}); a finished run's
    # ``model`` is the average itself
    average: dict[str, Any] | None = None
    adaptation_hash: str | None = None  # RunConfig.adaptation_hash of the run that wrote it

    _REQUIRED = ("model", "iteration", "config", "space_hash", "backbone", "classes")

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it would deep-copy every tensor.
        return {"format": FORMAT, **{f.name: getattr(self, f.name) for f in _fields()}}

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> TrainState:
        """A state read back from disk; anything malformed is a one-line CheckpointError."""
        if (
            not isinstance(raw, dict)
            or raw.get("format") != FORMAT
            or any(k not in raw for k in cls._REQUIRED)
        ):
            raise CheckpointError(
                f"{source}: not a slimda-nas checkpoint (expected format {FORMAT})"
            )
        kwargs = {f.name: raw[f.name] for f in _fields() if f.name in raw}
        kwargs.setdefault("space", {})
        kwargs.setdefault("space_name", "?")
        for name, default in (("task", "?"), ("method", "?"), ("deploy_head", "ca")):
            kwargs.setdefault(name, default)
        kwargs.setdefault("heads", ["cs", "ct", "ca"])
        state = cls(**kwargs)
        state._check(source)
        return state

    def _check(self, source: str) -> None:
        def bad(field: str, expected: str, got: Any) -> CheckpointError:
            return CheckpointError(
                f"{source}: field {field!r}: expected {expected}, got {type(got).__name__} "
                f"{_short(got)}; re-run training or restore the file"
            )

        if isinstance(self.iteration, bool) or not isinstance(self.iteration, int):
            raise bad("iteration", "an integer", self.iteration)
        if self.iteration < 0:
            raise bad("iteration", "a non-negative integer", self.iteration)
        if not isinstance(self.model, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in self.model.items()
        ):
            raise bad("model", "a mapping of parameter names to tensors", self.model)
        for name in ("config", "space"):
            if not isinstance(getattr(self, name), dict):
                raise bad(name, "a mapping", getattr(self, name))
        if not isinstance(self.classes, list) or not all(isinstance(c, str) for c in self.classes):
            raise bad("classes", "a list of class names", self.classes)
        if self.average is not None and not (
            isinstance(self.average, dict)
            and isinstance(self.average.get("state"), dict)
            and isinstance(self.average.get("count"), int)
        ):
            raise bad("average", "a mapping with 'state' and 'count'", self.average)
        for name in ("space_hash", "backbone", "deploy_head"):
            if not isinstance(getattr(self, name), str):
                raise bad(name, "a string", getattr(self, name))

    @property
    def resumable(self) -> list[str]:
        """What a resume needs and this state lacks (empty: it can be resumed)."""
        return [k for k in ("config_hash", "optimizer", "ranks") if getattr(self, k) is None]


def _fields() -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(TrainState)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def save_checkpoint(path: str | Path, state: TrainState) -> Path:
    """Write ``state`` to ``path`` via a temporary file and a rename."""
    blob = state.to_dict()
    return atomic_write(path, lambda f: torch.save(blob, f))


def load_checkpoint(
    path: str | Path,
    *,
    space_hash: str | None = None,
    backbone: str | None = None,
    map_location: str | torch.device = "cpu",
) -> TrainState:
    """Read a checkpoint; a missing, truncated or foreign file raises a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a damaged zip or pickle
        raise CheckpointError(
            f"{path}: unreadable or truncated checkpoint ({type(e).__name__}); re-run training or restore it"
        ) from None
    state = TrainState.from_dict(raw, str(path))
    if backbone is not None and state.backbone != backbone:
        raise CheckpointError(
            f"{path}: checkpoint is for backbone {state.backbone!r}, not {backbone!r}"
        )
    if space_hash is not None and state.space_hash != space_hash:
        raise CheckpointError(
            f"{path}: checkpoint was trained on search space {state.space_name} "
            f"(hash {state.space_hash}), not this one (hash {space_hash}); the widths would not match"
        )
    return state


def file_hash(path: str | Path) -> str:
    """sha256 (first 16 hex digits) of a file: identifies a trained bank in caches and reports."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def capture_rng() -> dict[str, Any]:
    """Global RNG states (torch, CUDA, numpy, random) in forms ``weights_only`` loading accepts."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": _python_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def state_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()
