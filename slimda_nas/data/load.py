"""``load_task``: from a task string to the three splits a run uses.

Protocols: digits train on the source train split (labelled) and the target train split
(unlabelled) and score on the target test split; image folders (Office-31 protocol) use every
source image labelled and every target image both unlabelled for training and for accuracy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from slimda_nas.data import _cache
from slimda_nas.data._decode import Decoder
from slimda_nas.data.digits import DIGITS_CLASSES, DIGITS_SIZE, read_digits, to_3x32
from slimda_nas.data.folders import FileList, check_classes_nonempty, list_domain
from slimda_nas.data.imageset import ImageSet
from slimda_nas.data.root import cache_home
from slimda_nas.data.tasks import DomainSpec, Task, parse_task
from slimda_nas.data.transforms import CropTransform, DigitsTransform, resize_size
from slimda_nas.errors import DataError, Notice


class UnreadableImagesWarning(Notice):
    """Some image files could not be decoded and were left out (the command line prints it as
    one note line)."""


@dataclass
class TaskData:
    """The splits of one task plus what exports must record (classes, size, normalisation)."""

    task: Task
    classes: list[str]
    input_size: int
    source_train: ImageSet
    target_train: ImageSet
    target_test: ImageSet
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def load_task(
    task: Task | str,
    data_root: Path | str | None,
    input_size: int,
    *,
    download: bool = True,
    workers: int | None = None,
    decode_cache: bool = False,
) -> TaskData:
    """Read, decode and check both domains of ``task``.

    Args:
        task: a :class:`Task` or its text, e.g. ``"office31:amazon->webcam"``.
        data_root: from :func:`resolve_data_root`; unused by ``folder:``/``list:`` domains.
        input_size: S, the network input side; digits require 32.
        download: let torchvision fetch missing MNIST/USPS files into ``<root>/digits``.
        workers: decode processes (default: CPU count up to 8; 0 decodes in this process).
        decode_cache: reuse/write decoded pixels under ``<cache folder>/decoded``.
    """
    task = parse_task(task) if isinstance(task, str) else task
    if input_size < 1:
        raise DataError(f"task {task}: input_size: expected a positive size, got {input_size}")
    root = Path(data_root).expanduser() if data_root is not None else None
    if task.source.is_digits:
        return _load_digits(task, root, input_size, download)
    cache_dir = cache_home() / "decoded" if decode_cache else None
    # List both domains before decoding either: a missing target fails in milliseconds.
    source_list = list_domain(task.source, root)
    target_list = (
        source_list
        if task.target == task.source
        else list_domain(task.target, root, unlabelled_ok=True)
    )
    # an unlabelled target (images without class folders): placeholder labels, never readable
    labelled = bool(target_list.classes)
    if labelled:
        _check_same_classes(task, source_list, target_list)
    else:
        n = len(target_list.files)
        target_list = FileList(target_list.where, target_list.files, [0] * n, source_list.classes)
    with Decoder(workers) as decoder:
        source = _decode_domain(task.source, source_list, input_size, decoder, cache_dir)
        target = (
            source
            if target_list is source_list
            else _decode_domain(
                task.target, target_list, input_size, decoder, cache_dir, labelled=labelled
            )
        )
    transform = source.transform
    return TaskData(
        task,
        source.classes,
        input_size,
        source,
        target.unlabelled(),
        target if labelled else target.unlabelled(),
        transform.mean,
        transform.std,
    )


def _load_digits(task: Task, root: Path | None, input_size: int, download: bool) -> TaskData:
    if input_size != DIGITS_SIZE:
        raise DataError(
            f"task {task}: input_size: expected {DIGITS_SIZE} (every digits task is "
            f"fed 3x32x32), got {input_size}"
        )
    if root is None:
        raise DataError(f"task {task}: no data root given (expected <root>/digits/<name>.npz)")
    transform = DigitsTransform(DIGITS_SIZE)
    # MNIST-M first: it cannot be downloaded, so fail before fetching the other set.
    names = sorted(
        dict.fromkeys((task.source.name, task.target.name)), key=lambda n: n != "mnist_m"
    )
    arrays = {name: read_digits(name, root, download=download) for name in names}

    def split(spec: DomainSpec, which: str) -> ImageSet:
        x, y = arrays[spec.name][which]
        return ImageSet(
            f"{spec.name}/{which}", DIGITS_CLASSES, to_3x32(x), torch.from_numpy(y), transform
        )

    target_train = split(task.target, "train")
    return TaskData(
        task,
        list(DIGITS_CLASSES),
        DIGITS_SIZE,
        split(task.source, "train"),
        target_train.unlabelled(),
        split(task.target, "test"),
        transform.mean,
        transform.std,
    )


def _decode_domain(
    spec: DomainSpec,
    listing: FileList,
    input_size: int,
    decoder: Decoder,
    cache_dir: Path | None,
    labelled: bool = True,
) -> ImageSet:
    short = resize_size(input_size)
    arrays = None
    if cache_dir is not None:
        key = _cache.cache_key(listing.files, short)
        arrays = _cache.load(cache_dir, key, len(listing.files))
    if arrays is None:
        arrays = decoder.decode(listing.files, short)
        if cache_dir is not None:
            _cache.save(cache_dir, key, arrays)
    listing = _drop_unreadable(listing, arrays, labelled)
    pixels = [torch.from_numpy(a) for a in arrays if a is not None]
    name = f"{spec.dataset}/{spec.name}" if spec.dataset else spec.name
    labels = torch.tensor(listing.labels, dtype=torch.int64)
    return ImageSet(name, listing.classes, pixels, labels, CropTransform(input_size))


def _drop_unreadable(listing: FileList, arrays: list, labelled: bool = True) -> FileList:
    """Skip undecodable files with one warning; a class left without images is an error (an
    unlabelled domain needs one image)."""
    bad = [f for f, a in zip(listing.files, arrays, strict=True) if a is None]
    if not bad:
        return listing
    keep = [i for i, a in enumerate(arrays) if a is not None]
    labels = [listing.labels[i] for i in keep]
    if labelled:  # an error first: then it is the one line printed
        check_classes_nonempty(listing.where, listing.classes, labels)
    elif not keep:
        raise DataError(f"{listing.where}: no readable images")
    warnings.warn(
        UnreadableImagesWarning(
            f"skipped {len(bad)} unreadable images under {listing.where} (first: {bad[0]})"
        ),
        stacklevel=4,
    )
    return FileList(listing.where, [listing.files[i] for i in keep], labels, listing.classes)


def _check_same_classes(task: Task, source: FileList, target: FileList) -> None:
    if source.classes == target.classes:
        return
    only_s = sorted(set(source.classes) - set(target.classes))
    only_t = sorted(set(target.classes) - set(source.classes))
    detail = (
        f"only in source: {only_s[:5]}, only in target: {only_t[:5]}"
        if only_s or only_t
        else "same names in a different order"
    )
    raise DataError(
        f"task {task}: class lists differ between {source.where} "
        f"({len(source.classes)} classes) and {target.where} "
        f"({len(target.classes)} classes): {detail}"
    )


def load_labelled(
    path: str | Path, input_size: int, classes: list[str], *, digits: bool = False
) -> ImageSet:
    """A small labelled target set (a class-per-folder directory or a list file) in the
    bank's class order, for REPORTING accuracy only (``--target-labelled``). It may hold fewer
    classes than the bank, not other ones. ``digits``: prepared as the digit sets are (3x32x32,
    grey replicated, digits normalisation); else as image folders (resize, centre crop)."""
    from slimda_nas.data._decode import read_resized
    from slimda_nas.data.folders import list_file, list_folder

    p = Path(path).expanduser()
    listing = list_file(p) if p.is_file() else list_folder(p)
    unknown = sorted(set(listing.classes) - set(classes))
    if unknown:
        raise DataError(
            f"--target-labelled {p}: classes the bank was not trained on: {unknown[:5]} "
            f"(expected sub-folders named like its {len(classes)} classes, e.g. {classes[:3]})"
        )
    index = {c: i for i, c in enumerate(classes)}
    labels = [index[listing.classes[k]] for k in listing.labels]
    if digits:
        arrays = []
        for f in listing.files:
            try:
                arrays.append(read_resized(f, None).transpose(1, 2, 0))
            except Exception:  # unreadable: left out below, as the decoder does
                arrays.append(None)
    else:
        with Decoder() as decoder:
            arrays = decoder.decode(listing.files, resize_size(input_size))
    keep = [i for i, a in enumerate(arrays) if a is not None]
    if len(keep) < len(arrays):
        bad = listing.files[next(i for i, a in enumerate(arrays) if a is None)]
        warnings.warn(
            UnreadableImagesWarning(
                f"skipped {len(arrays) - len(keep)} unreadable images under {p} (first: {bad})"
            ),
            stacklevel=2,
        )
    if not keep:
        raise DataError(f"--target-labelled {p}: no readable images")
    y = torch.tensor([labels[i] for i in keep], dtype=torch.int64)
    if digits:
        pixels = torch.cat([to_3x32(arrays[i][None]) for i in keep])
        return ImageSet(f"labelled:{p.name}", classes, pixels, y, DigitsTransform(DIGITS_SIZE))
    pixels = [torch.from_numpy(arrays[i]) for i in keep]
    return ImageSet(f"labelled:{p.name}", classes, pixels, y, CropTransform(input_size))
