"""Image-folder and list-file domains: Office-31 counts, list files, the torchvision-equivalent
eval transform, corrupt images, and one-line errors naming the path."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from slimda_nas.data import IMAGENET_MEAN, IMAGENET_STD, UnreadableImagesWarning, load_task
from slimda_nas.data.folders import list_folder
from slimda_nas.errors import DataError

OFFICE31 = {"amazon": 2817, "dslr": 498, "webcam": 795}


def test_office31_file_counts(office31: Path) -> None:
    listings = {d: list_folder(office31 / d) for d in OFFICE31}
    assert {d: len(v.files) for d, v in listings.items()} == OFFICE31
    classes = listings["amazon"].classes
    assert len(classes) == 31 and classes == sorted(classes)
    assert all(v.classes == classes for v in listings.values())
    assert all(len(set(v.labels)) == 31 for v in listings.values())


def test_office31_protocol(webcam_dslr, amazon) -> None:
    d = webcam_dslr
    assert str(d.task) == "office31:webcam->dslr" and d.input_size == 224
    assert (len(d.source_train), len(d.target_train), len(d.target_test)) == (795, 498, 498)
    assert len(d.classes) == 31 and d.classes == amazon.classes
    assert d.source_train.name == "office31/webcam" and d.target_test.name == "office31/dslr"
    assert torch.bincount(d.target_test.labels, minlength=31).min() > 0
    assert (d.mean, d.std) == (IMAGENET_MEAN, IMAGENET_STD)
    idx = torch.tensor([0, 100, 497])  # the unlabelled view and the test split share images
    assert torch.equal(d.target_train.eval_batch(idx), d.target_test.eval_batch(idx))
    assert len(amazon.source_train) == 2817
    assert torch.bincount(amazon.source_train.labels, minlength=31).min() > 0


def test_eval_transform_matches_torchvision(amazon, office31: Path) -> None:
    from torchvision import transforms as T

    pipeline = T.Compose(
        [T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    files = list_folder(office31 / "amazon").files
    for i in (0, 1234, 2816):
        with Image.open(files[i]) as img:
            expected = pipeline(img.convert("RGB"))
        assert torch.equal(amazon.source_train.eval_batch([i])[0], expected)


def test_list_file_loads_the_same_images(office31: Path, webcam_dslr, tmp_path: Path) -> None:
    """Relative paths (against the list's folder) and classes.txt give the folder's tensors."""
    listing = list_folder(office31 / "webcam")
    (tmp_path / "webcam").symlink_to(office31 / "webcam")
    lines = [
        f"{f.relative_to(office31)} {y}"
        for f, y in zip(listing.files, listing.labels, strict=True)
    ]
    (tmp_path / "webcam.txt").write_text("# Office-31 webcam\n" + "\n".join(lines) + "\n")
    (tmp_path / "classes.txt").write_text("\n".join(listing.classes) + "\n")
    lst = tmp_path / "webcam.txt"
    d = load_task(f"list:{lst}->list:{lst}", None, 224, workers=0)  # serial decode vs the pool
    ref = webcam_dslr.source_train
    assert d.classes == webcam_dslr.classes and len(d.source_train) == 795
    assert torch.equal(d.source_train.labels, ref.labels)
    for start in range(0, 795, 200):
        idx = torch.arange(start, min(start + 200, 795))
        assert torch.equal(d.source_train.eval_batch(idx), ref.eval_batch(idx))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(
        d.source_train.train_batch(torch.arange(16), g1), ref.train_batch(torch.arange(16), g2)
    )


def test_list_file_without_classes_txt(make_folder: Callable[..., Path], tmp_path: Path) -> None:
    root = make_folder("a")
    files = sorted((root / "images").rglob("*.png"))
    text = "\n".join(f"{f} {int(f.parent.name == 'dog')}" for f in files)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "a.txt").write_text(text)
    # Class names differ ("0", "1" vs "cat", "dog"): a mismatch, reported with both paths.
    with pytest.raises(DataError, match="class lists differ") as info:
        load_task(f"list:{tmp_path / 'lists' / 'a.txt'}->folder:{root}", None, 28)
    assert str(tmp_path / "lists" / "a.txt") in str(info.value)
    d = load_task(
        f"list:{tmp_path / 'lists' / 'a.txt'}->list:{tmp_path / 'lists' / 'a.txt'}", None, 28
    )
    assert d.classes == ["0", "1"] and len(d.source_train) == 6


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("img.png x", "a.txt:1: expected '<image path> <integer label>'"),
        ("missing.png 0", "a.txt:1: image not found"),
        ("", "a.txt: list file has no images"),
    ],
)
def test_bad_list_files(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "a.txt").write_text(text)
    with pytest.raises(DataError, match=needle):
        load_task(f"list:{tmp_path / 'a.txt'}->list:{tmp_path / 'a.txt'}", None, 224)


def test_folder_layouts_and_sizes(make_folder: Callable[..., Path]) -> None:
    with_images = make_folder("a", images_dir=True)
    without = make_folder("b", images_dir=False)
    d = load_task(f"folder:{with_images}->folder:{without}", None, 28)
    assert d.classes == ["cat", "dog"] and len(d.source_train) == len(d.target_test) == 6
    # Stored with shorter side 28 * 256 // 224 = 32, aspect kept; inputs are 28 x 28.
    stored = d.source_train.images(torch.arange(6))
    assert isinstance(stored, list) and all(min(t.shape[1:]) == 32 for t in stored)
    assert d.source_train.eval_batch(torch.arange(6)).shape == (6, 3, 28, 28)


def test_train_crops_are_windows_of_the_stored_image(make_folder: Callable[..., Path]) -> None:
    d = load_task(f"folder:{make_folder()}->folder:{make_folder()}", None, 28)
    s = d.source_train
    g = torch.Generator().manual_seed(3)
    x = s.train_batch(torch.arange(6), g)
    assert x.shape == (6, 3, 28, 28)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    pixels = (x * std + mean) * 255
    flips = 0
    for i, img in enumerate(s.images(torch.arange(6))):
        h, w = img.shape[1:]
        windows = [
            img[:, top : top + 28, left : left + 28].float()
            for top in range(h - 27)
            for left in range(w - 27)
        ]
        straight = any((win - pixels[i]).abs().max() < 1e-3 for win in windows)
        flipped = any((win.flip(-1) - pixels[i]).abs().max() < 1e-3 for win in windows)
        assert straight or flipped
        flips += flipped and not straight
    assert 0 < flips < 6  # both branches used with this seed
    g2 = torch.Generator().manual_seed(3)
    assert torch.equal(s.train_batch(torch.arange(6), g2), x)


def test_corrupt_images_are_skipped_with_a_count(make_folder: Callable[..., Path]) -> None:
    root = make_folder(per_class=3)
    cat = root / "images" / "cat"
    good = cat / "000.png"
    (cat / "bad1.jpg").write_bytes(b"this is not a jpeg")
    Image.open(good).convert("RGB").save(cat / "full.jpg", quality=90)
    data = (cat / "full.jpg").read_bytes()
    (cat / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (cat / "notes.txt").write_text("ignored: not an image extension")
    with pytest.warns(UnreadableImagesWarning, match=f"skipped 2 unreadable images under {root}"):
        d = load_task(f"folder:{root}->folder:{root}", None, 28)
    assert len(d.source_train) == 7 and torch.bincount(d.source_train.labels).tolist() == [4, 3]


def test_class_left_empty_by_corrupt_images(make_folder: Callable[..., Path]) -> None:
    root = make_folder(per_class=2)
    for f in (root / "images" / "dog").iterdir():
        f.write_bytes(b"\x00" * 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableImagesWarning)
        with pytest.raises(
            DataError, match=f"{root / 'images'}: class 'dog' .* no readable images"
        ):
            load_task(f"folder:{root}->folder:{root}", None, 28)


def test_empty_class_folder(make_folder: Callable[..., Path]) -> None:
    root = make_folder()
    (root / "images" / "zebra").mkdir()
    with pytest.raises(
        DataError, match=f"{root / 'images' / 'zebra'}: class folder has no images"
    ):
        load_task(f"folder:{root}->folder:{root}", None, 28)


def test_missing_folders_and_unknown_domains(office31: Path, tmp_path: Path) -> None:
    root = office31.parent
    with pytest.raises(
        DataError, match=f"{office31 / 'clipart'}: unknown domain 'clipart' .*amazon, dslr, webcam"
    ):
        load_task("office31:amazon->clipart", root, 224)
    with pytest.raises(DataError, match=f"{root / 'office_home'}: dataset folder not found"):
        load_task("office_home:Art->Clipart", root, 224)
    with pytest.raises(DataError, match=f"{tmp_path / 'gone'}: domain folder not found"):
        load_task(f"folder:{tmp_path / 'gone'}->folder:{tmp_path / 'gone'}", None, 224)
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match=f"{tmp_path / 'flat'}: no class folders"):
        load_task(f"folder:{tmp_path / 'flat'}->folder:{tmp_path / 'flat'}", None, 224)


def test_mismatched_classes(make_folder: Callable[..., Path]) -> None:
    a = make_folder("a", classes=("cat", "dog"))
    b = make_folder("b", classes=("cat", "eel"))
    with pytest.raises(DataError) as info:
        load_task(f"folder:{a}->folder:{b}", None, 28)
    msg = str(info.value)
    assert "class lists differ" in msg and str(a) in msg and str(b) in msg and "'eel'" in msg


def test_decode_cache(
    make_folder: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slimda_nas.data import _decode

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = make_folder()
    (root / "images" / "cat" / "bad.png").write_bytes(b"junk")
    task = f"folder:{root}->folder:{root}"
    with pytest.warns(UnreadableImagesWarning):
        first = load_task(task, None, 28, decode_cache=True)
    assert len(list((tmp_path / "cache" / "slimda-nas" / "decoded").glob("*.npy"))) == 1

    def no_decoding(self, files, short):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(_decode.Decoder, "decode", no_decoding)
    with pytest.warns(UnreadableImagesWarning):  # the count is reported on a hit too
        again = load_task(task, None, 28, decode_cache=True)
    idx = torch.arange(6)
    assert torch.equal(again.source_train.eval_batch(idx), first.source_train.eval_batch(idx))
    changed = root / "images" / "dog" / "000.png"
    os.utime(changed, ns=(0, 10**18))  # a new mtime is a new key: decode again
    with pytest.raises(AssertionError, match="decoded although cached"):
        load_task(task, None, 28, decode_cache=True)


def test_linked_folders_are_followed_once(make_folder: Callable[..., Path], tmp_path) -> None:
    """A class folder linked from elsewhere is read; a link back up the tree (a loop) or a
    second link to one folder adds nothing (it counted one file 121 times, in the wrong class);
    a link into another class's folder is refused (its images took the first class's label)."""
    root = make_folder(per_class=2)
    elsewhere = make_folder("elsewhere", classes=("bird",), per_class=2) / "images" / "bird"
    (root / "images" / "bird").symlink_to(elsewhere, target_is_directory=True)
    (root / "images" / "cat" / "back").symlink_to(root / "images", target_is_directory=True)
    (elsewhere / "more").mkdir()
    (elsewhere / "000.png").rename(elsewhere / "more" / "000.png")
    (elsewhere / "again").symlink_to(elsewhere / "more", target_is_directory=True)
    listing = list_folder(root)
    assert listing.classes == ["bird", "cat", "dog"]
    assert Counter(listing.labels) == {0: 2, 1: 2, 2: 2}
    (root / "images" / "dog" / "birds").symlink_to(elsewhere / "more", target_is_directory=True)
    with pytest.raises(DataError, match=r"dog/birds: links into another class's folder"):
        list_folder(root)
