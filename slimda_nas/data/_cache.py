"""Optional on-disk cache of decoded images, keyed by file list + mtimes + sizes + resize size.

One domain at one resize size is one flat ``<key>.npy`` (all pixels) and ``<key>.json`` (the
shape of each image, ``null`` for unreadable files). The json is written last, so a cache
entry without it is ignored. Any change to a file's path, mtime or byte size changes the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from slimda_nas._io import atomic_write, write_json
from slimda_nas.data._decode import Decoded

_VERSION = 1  # bump when decoding or the file format changes


def cache_key(files: Sequence[Path], short: int) -> str:
    digest = hashlib.sha256(f"slimda-nas-decode:{_VERSION}:{short}\n".encode())
    for f in files:
        st = os.stat(f)
        digest.update(f"{os.path.abspath(f)}\t{st.st_mtime_ns}\t{st.st_size}\n".encode())
    return digest.hexdigest()[:32]


def load(folder: Path, key: str, count: int) -> list[Decoded] | None:
    """The cached arrays (views into one buffer), or None on a miss or a damaged entry."""
    meta_path, data_path = folder / f"{key}.json", folder / f"{key}.npy"
    try:
        meta = json.loads(meta_path.read_text())
        flat = np.load(data_path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    shapes = meta.get("shapes")
    if not isinstance(shapes, list) or len(shapes) != count:
        return None
    sizes = [int(np.prod(s)) if s else 0 for s in shapes]
    if flat.dtype != np.uint8 or flat.ndim != 1 or sum(sizes) != flat.size:
        return None
    out: list[Decoded] = []
    offset = 0
    for shape, size in zip(shapes, sizes, strict=True):
        out.append(flat[offset : offset + size].reshape(shape) if shape else None)
        offset += size
    return out


def save(folder: Path, key: str, arrays: Sequence[Decoded]) -> None:
    """Write the entry; a failure (read-only folder, full disk) only warns."""
    total = sum(a.size for a in arrays if a is not None)

    def write(f) -> None:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "|u1", "fortran_order": False, "shape": (total,)}
        )
        for a in arrays:
            if a is not None:
                f.write(memoryview(np.ascontiguousarray(a)).cast("B"))

    try:
        atomic_write(folder / f"{key}.npy", write)
        write_json(
            folder / f"{key}.json",
            {
                "version": _VERSION,
                "shapes": [list(a.shape) if a is not None else None for a in arrays],
            },
        )
    except OSError as exc:
        warnings.warn(f"{folder}: could not write the decode cache ({exc})", stacklevel=3)
