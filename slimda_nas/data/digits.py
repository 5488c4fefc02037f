"""Reading the digit sets (MNIST, USPS, MNIST-M) and bringing them to 3x32x32 uint8.

Order of sources under ``<root>/digits/``: ``<name>.npz`` (arrays ``x_train``, ``y_train``,
``x_test``, ``y_test``), then torchvision's own files (``MNIST/raw/``, ``usps.bz2``,
``usps.t.bz2``), then a torchvision download when allowed. MNIST-M has no torchvision loader.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from slimda_nas.errors import DataError

DIGITS_SIZE = 32
DIGITS_CLASSES = [str(d) for d in range(10)]
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_TV_FILES = {
    "mnist": ("MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/t10k-images-idx3-ubyte"),
    "usps": ("usps.bz2", "usps.t.bz2"),
}
Split = tuple[np.ndarray, np.ndarray]


def read_digits(name: str, root: Path, *, download: bool = True) -> dict[str, Split]:
    """Native arrays ``{"train": (x, y), "test": (x, y)}``; x is (N, H, W) or (N, H, W, 3) uint8."""
    folder = Path(root) / "digits"
    npz = folder / f"{name}.npz"
    if npz.is_file():
        return _read_npz(npz)
    if name == "mnist_m":
        raise DataError(
            f"{npz}: not found; MNIST-M is not in torchvision: put mnist_m.npz there (uint8 x_train/"
            "x_test (N, 32, 32, 3), int64 y_train/y_test; see docs/data.md)"
        )
    if name not in _TV_FILES:
        raise DataError(f"{npz}: unknown digits set {name!r}: expected mnist, usps or mnist_m")
    have = all((folder / f).is_file() for f in _TV_FILES[name])
    if not have and not download:
        raise DataError(
            f"{npz}: not found (nor torchvision's {_TV_FILES[name][0]} there); "
            "allow downloads or put the npz file there"
        )
    return _read_torchvision(name, folder, download=not have)


def _read_npz(path: Path) -> dict[str, Split]:
    if not zipfile.is_zipfile(path):  # else numpy's message is about pickles
        raise DataError(f"{path}: not an npz archive (expected numpy.savez's zip of arrays)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _NPZ_KEYS if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing} (expected {list(_NPZ_KEYS)})")
            arrays = {k: z[k] for k in _NPZ_KEYS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: unreadable npz file ({exc})") from exc
    out = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        _check(path, split, x, y)
        out[split] = (x, y.astype(np.int64, copy=False))
    return out


def _check(path: Path | str, split: str, x: np.ndarray, y: np.ndarray) -> None:
    if x.dtype != np.uint8 or not (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] == 3)):
        raise DataError(
            f"{path}: x_{split}: expected uint8 (N, H, W) or (N, H, W, 3), "
            f"got {x.dtype} {tuple(x.shape)}"
        )
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"{path}: y_{split}: expected {len(x)} integer labels, got {y.dtype} {tuple(y.shape)}"
        )
    if len(y) == 0 or y.min() < 0 or y.max() > 9:
        raise DataError(f"{path}: y_{split}: expected labels 0..9 and at least one image")


def _read_torchvision(name: str, folder: Path, *, download: bool) -> dict[str, Split]:
    """Use torchvision's datasets (and their download) for MNIST and USPS."""
    try:
        from torchvision import datasets
    except ImportError as exc:  # pragma: no cover - torchvision is a dependency
        raise DataError(
            f"{folder / (name + '.npz')}: not found and torchvision is missing"
        ) from exc
    cls = datasets.MNIST if name == "mnist" else datasets.USPS
    out = {}
    for split, train in (("train", True), ("test", False)):
        try:
            if download:
                folder.mkdir(parents=True, exist_ok=True)
            ds = cls(str(folder), train=train, download=download)
        except Exception as exc:  # network, checksum, disk: all end as one line
            action = "download" if download else "read"
            raise DataError(
                f"{folder}: could not {action} {name} through torchvision "
                f"(expected {folder / (name + '.npz')} or torchvision's "
                f"{_TV_FILES[name][0]}): {type(exc).__name__}: {exc}"
            ) from exc
        x = ds.data.numpy() if isinstance(ds.data, Tensor) else np.asarray(ds.data)
        y = np.asarray(ds.targets, dtype=np.int64)
        _check(folder / _TV_FILES[name][0 if train else 1], split, x, y)
        out[split] = (np.ascontiguousarray(x, dtype=np.uint8), y)
    return out


def to_3x32(x: np.ndarray, chunk: int = 8192) -> Tensor:
    """(N, H, W[, 3]) uint8 -> (N, 3, 32, 32) uint8: bilinear (antialias) resize, grey replicated.

    Grey sets come back as a zero-copy ``expand`` of one channel, a third of the memory.
    """
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    if tuple(t.shape[-2:]) != (DIGITS_SIZE, DIGITS_SIZE):
        parts = []
        for start in range(0, len(t), chunk):
            part = t[start : start + chunk].float()
            part = F.interpolate(
                part,
                size=(DIGITS_SIZE, DIGITS_SIZE),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            parts.append(part.round_().clamp_(0, 255).to(torch.uint8))
        t = torch.cat(parts) if parts else t.new_empty((0, t.shape[1], DIGITS_SIZE, DIGITS_SIZE))
    t = t.contiguous()
    return t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t
