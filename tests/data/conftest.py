"""Fixtures for the data tests: decoded real domains (once per session) and tiny synthetic folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slimda_nas.data import TaskData, load_task


@pytest.fixture(scope="session")
def office31(data_root: Path) -> Path:
    path = data_root / "office31"
    if not path.is_dir():
        pytest.skip(f"Office-31 not found at {path}")
    return path


@pytest.fixture(scope="session")
def webcam_dslr(office31: Path) -> TaskData:
    """webcam -> dslr at 224 px (1293 small images: quick to decode)."""
    return load_task("office31:webcam->dslr", office31.parent, 224)


@pytest.fixture(scope="session")
def amazon(office31: Path) -> TaskData:
    """amazon decoded once for the whole session (2817 images); source and target share it."""
    return load_task("office31:amazon->amazon", office31.parent, 224)


def write_image(path: Path, size: tuple[int, int], seed: int, fmt: str = "PNG") -> None:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)


@pytest.fixture
def make_folder(tmp_path: Path) -> Callable[..., Path]:
    """Build ``<tmp>/<name>/[images/]<class>/<i>.png`` with images of varied sizes."""

    def make(
        name: str = "dom",
        classes: tuple[str, ...] = ("cat", "dog"),
        per_class: int = 3,
        images_dir: bool = True,
    ) -> Path:
        root = tmp_path / name
        base = root / "images" if images_dir else root
        for c, cls in enumerate(classes):
            for i in range(per_class):
                size = (40 + 7 * i, 36 + 5 * c)  # (w, h), not square, not all equal
                write_image(base / cls / f"{i:03d}.png", size, seed=100 * c + i)
        return root

    return make
