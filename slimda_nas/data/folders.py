"""Listing image-folder and list-file domains (no decoding here).

Folder layout: ``<domain>/[images/]<class>/**/<file>``, classes sorted by name and files sorted
by path, as torchvision's ``ImageFolder`` does. List file: ``<image path> <integer label>``
lines, relative paths resolved against the list file's folder, class names from an optional
``classes.txt`` beside it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from slimda_nas.data.tasks import DomainSpec
from slimda_nas.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class FileList:
    """The images of one domain, in load order, with the path that error messages name."""

    where: Path
    files: list[Path]
    labels: list[int]
    classes: list[str]


def list_domain(
    spec: DomainSpec, data_root: Path | None, *, unlabelled_ok: bool = False
) -> FileList:
    """List a ``folder`` or ``list`` domain spec; dataset domains resolve under ``data_root``.
    With ``unlabelled_ok`` (a target), a folder of images without class sub-folders is listed
    as unlabelled: no classes, no labels."""
    if spec.kind == "list":
        return list_file(Path(spec.path or "").expanduser())
    if spec.path is not None:
        return list_folder(Path(spec.path).expanduser(), unlabelled_ok=unlabelled_ok)
    return list_folder(dataset_domain_dir(data_root, spec.dataset or "", spec.name))


def dataset_domain_dir(data_root: Path | None, dataset: str, domain: str) -> Path:
    """``<root>/<dataset>/<domain>``, with one-line errors naming what is there instead."""
    if data_root is None:
        raise DataError(
            f"{dataset}:{domain}: no data root given (expected <root>/{dataset}/{domain})"
        )
    root = Path(data_root)
    if not root.is_dir():
        raise DataError(f"{root}: data root not found (expected {root / dataset / domain})")
    base = root / dataset
    if not base.is_dir():
        found = ", ".join(_subdirs(root)) or "nothing"
        raise DataError(f"{base}: dataset folder not found under the data root (found: {found})")
    path = base / domain
    if not path.is_dir():
        found = ", ".join(_subdirs(base)) or "nothing"
        raise DataError(f"{path}: unknown domain {domain!r} of {dataset} (found: {found})")
    return path


def list_folder(path: Path, *, unlabelled_ok: bool = False) -> FileList:
    """Classes are the sub-folders of ``path`` (or of ``path/images`` when that is the only one).
    With ``unlabelled_ok``, a folder holding images and no sub-folder is unlabelled."""
    if not path.is_dir():
        raise DataError(
            f"{path}: domain folder not found (expected <domain>/[images/]<class>/*.jpg)"
        )
    top = _subdirs(path)
    class_root = path / "images" if top == ["images"] else path
    classes = _subdirs(class_root)
    if not classes and unlabelled_ok:
        files = _images_under(class_root)
        if files:
            return FileList(class_root, files, [], [])
    if not classes:
        raise DataError(f"{class_root}: no class folders (expected {class_root}/<class>/*.jpg)")
    files: list[Path] = []
    labels: list[int] = []
    # each real folder is read once; one inside another class's folder is refused (its images
    # would take the label of whichever class is read first)
    reals = {c: os.path.realpath(class_root / c) for c in classes}
    seen = {os.path.realpath(class_root), *reals.values()}
    for label, name in enumerate(classes):
        others = [r for c, r in reals.items() if c != name]
        found = _images_under(class_root / name, seen, others)
        if not found:
            raise DataError(
                f"{class_root / name}: class folder has no images "
                f"(expected files ending in {', '.join(IMAGE_EXTENSIONS)})"
            )
        files += found
        labels += [label] * len(found)
    return FileList(class_root, files, labels, classes)


def list_file(path: Path) -> FileList:
    """Read ``<image path> <label>`` lines; blank lines and ``#`` comments are skipped."""
    if not path.is_file():
        raise DataError(f"{path}: list file not found (expected '<image path> <label>' lines)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable list file ({exc})") from exc
    classes = _read_classes(path.parent / "classes.txt")
    files: list[Path] = []
    labels: list[int] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.rsplit(None, 1)
        if len(parts) != 2 or not re.fullmatch(r"-?[0-9]+", parts[1]):
            raise DataError(
                f"{path}:{number}: expected '<image path> <integer label>', got {text!r}"
            )
        image, label = Path(parts[0]).expanduser(), int(parts[1])
        if label < 0 or (classes is not None and label >= len(classes)):
            limit = f"0..{len(classes) - 1} (classes.txt)" if classes else "a label >= 0"
            raise DataError(f"{path}:{number}: label: expected {limit}, got {label}")
        image = image if image.is_absolute() else path.parent / image
        if not image.is_file():
            raise DataError(f"{path}:{number}: image not found: {image}")
        files.append(image)
        labels.append(label)
    if not files:
        raise DataError(f"{path}: list file has no images (expected '<image path> <label>' lines)")
    if classes is None:
        classes = [str(k) for k in range(max(labels) + 1)]
    check_classes_nonempty(path, classes, labels)
    return FileList(path, files, labels, classes)


def check_classes_nonempty(where: Path, classes: list[str], labels: list[int]) -> None:
    """Every class needs an image: an empty one breaks class-balanced losses and accuracy."""
    present = set(labels)
    for label, name in enumerate(classes):
        if label not in present:
            raise DataError(f"{where}: class {name!r} (label {label}) has no readable images")


def _read_classes(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable class list ({exc}; expected UTF-8 text)") from exc
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names or len(set(names)) != len(names):
        raise DataError(f"{path}: expected one unique class name per line")
    return names


def _subdirs(path: Path) -> list[str]:
    try:
        return sorted(
            e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith(".")
        )
    except OSError:
        return []


def _images_under(
    folder: Path, seen: set[str] | None = None, others: Sequence[str] = ()
) -> list[Path]:
    """Recursive and sorted by (folder, name) like ``ImageFolder``; hidden entries skipped.
    ``seen`` holds the real paths of folders already read (and is updated); a linked folder
    inside one of ``others`` (the real paths of the other classes' folders) is an error."""
    found: list[tuple[str, str]] = []
    seen = {os.path.realpath(folder)} if seen is None else seen
    for parent, dirs, names in os.walk(folder, followlinks=True):
        # Linked folders are followed (data kept elsewhere), each real folder once: a link
        # back up the tree would loop, and a second way to one folder would count it twice.
        keep = []
        for d in dirs:
            real = os.path.realpath(os.path.join(parent, d))
            inside = [o for o in others if os.path.commonpath((o, real)) == o]
            if inside and not d.startswith("."):
                raise DataError(
                    f"{Path(parent) / d}: links into another class's folder ({inside[0]}); "
                    "an image must be in one class"
                )
            if not d.startswith(".") and real not in seen:
                seen.add(real)
                keep.append(d)
        dirs[:] = keep
        found += [
            (parent, n)
            for n in names
            if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)
        ]
    files = [Path(parent) / name for parent, name in sorted(found)]
    for f in files:
        if not _is_regular(f):  # reading a FIFO named *.png would wait forever
            raise DataError(f"{f}: not a regular file (a FIFO, device or socket); remove it")
    return files


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True  # a dangling link: the decoder names it as unreadable
