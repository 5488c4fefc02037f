"""Digits on the real files: published split sizes and class counts, the 3x32x32 decision,
torchvision's layout as a second source, and one-line errors."""

from __future__ import annotations

import bz2
import gzip
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from slimda_nas.data import LabelAccessError, load_task
from slimda_nas.data.digits import read_digits
from slimda_nas.errors import DataError

MNIST_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
USPS_TRAIN = [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]
USPS_TEST = [359, 264, 198, 166, 200, 160, 170, 147, 166, 177]


@pytest.fixture(scope="module")
def digits_dir(data_root: Path) -> Path:
    path = data_root / "digits"
    if not (path / "mnist.npz").is_file():
        pytest.skip(f"digits npz files not found under {path}")
    return path


@pytest.fixture(scope="module")
def usps_mnist(digits_dir: Path):
    return load_task("usps->mnist", digits_dir.parent, 32)


def test_usps_to_mnist_protocol(usps_mnist) -> None:
    d = usps_mnist
    assert str(d.task) == "usps->mnist" and d.input_size == 32
    assert d.classes == [str(k) for k in range(10)]
    assert (len(d.source_train), len(d.target_train), len(d.target_test)) == (7291, 60000, 10000)
    assert torch.bincount(d.source_train.labels).tolist() == USPS_TRAIN
    assert torch.bincount(d.target_test.labels).tolist() == MNIST_TEST
    assert d.target_train.name == "mnist/train" and d.target_test.name == "mnist/test"
    assert d.mean == (0.5, 0.5, 0.5) and d.std == (0.5, 0.5, 0.5)
    with pytest.raises(LabelAccessError, match="never read target labels"):
        _ = d.target_train.labels


def test_mnist_and_usps_test_splits(digits_dir: Path) -> None:
    d = load_task("mnist->usps", digits_dir.parent, 32)
    assert (len(d.source_train), len(d.target_train), len(d.target_test)) == (60000, 7291, 2007)
    assert torch.bincount(d.source_train.labels).tolist() == MNIST_TRAIN
    assert torch.bincount(d.target_test.labels).tolist() == USPS_TEST


def test_mnist_m_sizes(digits_dir: Path) -> None:
    d = load_task("mnist->mnist_m", digits_dir.parent, 32)
    assert (len(d.target_train), len(d.target_test)) == (10000, 9001)
    x = d.target_test.images(torch.arange(8))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.uint8
    raw = np.load(digits_dir / "mnist_m.npz")["x_test"][:8]  # kept as is, only to CHW
    assert torch.equal(x, torch.from_numpy(raw).permute(0, 3, 1, 2))
    assert not torch.equal(x[:, 0], x[:, 1])  # colour survives


def test_every_digits_input_is_3x32x32_normalised(usps_mnist, digits_dir: Path) -> None:
    d = usps_mnist
    stored = d.source_train.images(torch.arange(4))
    assert stored.shape == (4, 3, 32, 32) and stored.dtype == torch.uint8
    assert torch.equal(stored[:, 0], stored[:, 1]) and torch.equal(stored[:, 0], stored[:, 2])
    # Grey 16x16 -> 32x32 bilinear equals PIL's bilinear resize up to rounding.
    raw = np.load(digits_dir / "usps.npz")["x_train"][0]
    pil = np.asarray(Image.fromarray(raw).resize((32, 32), Image.BILINEAR)).astype(int)
    assert np.abs(stored[0, 0].numpy().astype(int) - pil).max() <= 1
    x = d.source_train.eval_batch(torch.arange(4))
    assert x.dtype == torch.float32 and x.shape == (4, 3, 32, 32)
    assert torch.allclose(x, stored.float() / 255 * 2 - 1, atol=1e-6)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(d.source_train.train_batch(torch.arange(4), g), x)  # no augmentation


def test_digits_need_input_size_32(digits_dir: Path) -> None:
    with pytest.raises(DataError, match="input_size: expected 32 .* got 224"):
        load_task("usps->mnist", digits_dir.parent, 224)


def _write_torchvision_layout(digits_dir: Path, out: Path) -> None:
    """MNIST idx files and USPS libsvm bz2 files, as torchvision downloads them."""
    mnist = np.load(digits_dir / "mnist.npz")
    raw = out / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, split in (("train", "train"), ("t10k", "test")):
        x, y = mnist[f"x_{split}"], mnist[f"y_{split}"]
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">iiii", 2051, len(x), 28, 28) + x.tobytes()
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">ii", 2049, len(y)) + y.astype(np.uint8).tobytes()
        )
    for src, name in (("zip.train.gz", "usps.bz2"), ("zip.test.gz", "usps.t.bz2")):
        lines = []
        for line in gzip.open(digits_dir / "usps_raw" / src, "rt"):
            label, *values = line.split()
            pairs = " ".join(f"{i + 1}:{v}" for i, v in enumerate(values))
            lines.append(f"{int(float(label)) + 1} {pairs}\n")
        (out / name).write_bytes(bz2.compress("".join(lines).encode()))


def test_torchvision_layout_gives_the_same_digits(
    digits_dir: Path, tmp_path: Path, usps_mnist
) -> None:
    if not (digits_dir / "usps_raw" / "zip.train.gz").is_file():
        pytest.skip("usps_raw not found")
    _write_torchvision_layout(digits_dir, tmp_path / "digits")
    d = load_task("usps->mnist", tmp_path, 32, download=False)
    ref = usps_mnist
    idx = torch.arange(0, 60000, 97)
    assert torch.equal(d.target_train.images(idx), ref.target_train.images(idx))
    assert torch.equal(d.target_test.labels, ref.target_test.labels)
    assert torch.equal(d.source_train.labels, ref.source_train.labels)
    # torchvision truncates where the npz rounds: at most 1 grey level apart before resizing.
    tv = read_digits("usps", tmp_path, download=False)["train"][0].astype(int)
    npz = read_digits("usps", digits_dir.parent, download=False)["train"][0].astype(int)
    assert np.abs(tv - npz).max() <= 1


def test_download_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision import datasets

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(datasets, "MNIST", offline)
    with pytest.raises(DataError) as info:
        load_task("mnist->usps", tmp_path, 32, download=True)
    msg = str(info.value)
    assert str(tmp_path / "digits") in msg and "mnist.npz" in msg and "no network" in msg
    assert "\n" not in msg


def test_mnist_m_missing_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"digits/mnist_m\.npz: not found; MNIST-M is not in torchvision"
    ):
        load_task("mnist_m->mnist", tmp_path, 32, download=False)


def test_corrupt_npz(tmp_path: Path) -> None:
    (tmp_path / "digits").mkdir()
    (tmp_path / "digits" / "usps.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"usps\.npz: not an npz archive"):
        load_task("usps->usps", tmp_path, 32)
    np.savez(tmp_path / "digits" / "usps.npz", x_train=np.zeros((2, 16, 16), np.uint8))
    with pytest.raises(DataError, match=r"usps\.npz: missing arrays"):
        load_task("usps->usps", tmp_path, 32)
