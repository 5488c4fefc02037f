"""Training checkpoints: written atomically, refused when they belong to another run."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimda_nas._io import atomic_write
from slimda_nas.errors import CheckpointError

FORMAT = "slimda-nas/checkpoint/1"
REQUIRED = ("format", "model", "iteration", "config", "space_hash", "backbone", "classes")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (see :func:`capture_rng`) to ``path`` via a temporary file and a rename."""
    state = {"format": FORMAT, **state}
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(
    path: str | Path,
    *,
    space_hash: str | None = None,
    backbone: str | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Read a checkpoint; a missing, truncated or foreign file raises a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a damaged zip or pickle
        raise CheckpointError(
            f"{path}: unreadable or truncated checkpoint ({type(e).__name__}); re-run training or restore it"
        ) from None
    if (
        not isinstance(state, dict)
        or state.get("format") != FORMAT
        or any(k not in state for k in REQUIRED)
    ):
        raise CheckpointError(f"{path}: not a slimda-nas checkpoint (expected format {FORMAT})")
    if backbone is not None and state["backbone"] != backbone:
        raise CheckpointError(
            f"{path}: checkpoint is for backbone {state['backbone']!r}, not {backbone!r}"
        )
    if space_hash is not None and state["space_hash"] != space_hash:
        raise CheckpointError(
            f"{path}: checkpoint was trained on search space {state.get('space_name', '?')} "
            f"(hash {state['space_hash']}), not this one (hash {space_hash}); the widths would not match"
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
