"""What a task's data holds, read before training (``slimda-nas train --dry-run``): images per
class and domain, classes on one side only, files PIL cannot decode. Reads, never writes."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from slimda_nas.data._decode import default_workers
from slimda_nas.data.folders import list_domain
from slimda_nas.data.tasks import DomainSpec, Task, parse_task
from slimda_nas.errors import DataError


@dataclass(frozen=True)
class DomainSummary:
    """One domain: images per class (in class order), unreadable files, or why it cannot load."""

    name: str
    where: str
    counts: dict[str, int] = field(default_factory=dict)
    unreadable: tuple[str, ...] = ()
    error: str | None = None
    unlabelled: int = 0  # images of a folder without class sub-folders (a target)

    @property
    def images(self) -> int:
        return sum(self.counts.values()) + self.unlabelled

    @property
    def emptied(self) -> str | None:
        """Why training would stop on this domain once its unreadable files are left out."""
        if self.error is not None or not self.unreadable:
            return None
        empty = [c for c, n in self.counts.items() if n == 0]
        if empty:
            return f"{self.where}: class {empty[0]!r} has no readable images"
        return None if self.counts or self.unlabelled else f"{self.where}: no readable images"


@dataclass(frozen=True)
class DataSummary:
    task: str
    source: DomainSummary
    target: DomainSummary

    @property
    def classes(self) -> list[str]:
        return list(self.source.counts)

    @property
    def only_source(self) -> list[str]:
        if self.target.unlabelled:
            return []  # an unlabelled target has no classes to compare
        return [c for c in self.source.counts if c not in self.target.counts]

    @property
    def only_target(self) -> list[str]:
        return [c for c in self.target.counts if c not in self.source.counts]

    @property
    def problems(self) -> list[str]:
        """What would stop training (the loader refuses these), one line each."""
        out = [f"{d.name}: {d.error}" for d in (self.source, self.target) if d.error]
        out += [d.emptied for d in (self.source, self.target) if d.emptied]
        if not out and (self.only_source or self.only_target):
            out.append(
                f"class lists differ: only in source {self.only_source[:5]}, only in target "
                f"{self.only_target[:5]} (both folders need the same class sub-folders)"
            )
        return out


def summarize_data(task: Task | str, data_root: Path | None) -> DataSummary:
    """List both domains of ``task`` and try to decode every image file (at a reduced scale
    where the format allows: quick, yet a truncated file still fails)."""
    task = parse_task(task) if isinstance(task, str) else task
    return DataSummary(
        str(task),
        _summarize(task.source, data_root),
        _summarize(task.target, data_root, unlabelled_ok=task.target != task.source),
    )


def _summarize(
    spec: DomainSpec, data_root: Path | None, unlabelled_ok: bool = False
) -> DomainSummary:
    if spec.is_digits:
        return _digits(spec, data_root)
    try:
        listing = list_domain(spec, data_root, unlabelled_ok=unlabelled_ok)
    except DataError as e:
        return DomainSummary(spec.name, str(spec), error=str(e))
    with ThreadPoolExecutor(default_workers()) as pool:
        ok = list(pool.map(_readable, listing.files))
    bad = tuple(str(f) for f, good in zip(listing.files, ok, strict=True) if not good)
    # what training keeps: the readable images (the loader leaves the others out)
    per_class = Counter(label for label, good in zip(listing.labels, ok) if good)
    counts = {c: per_class.get(i, 0) for i, c in enumerate(listing.classes)}
    unlabelled = 0 if listing.classes else sum(ok)
    return DomainSummary(spec.name, str(listing.where), counts, bad, unlabelled=unlabelled)


def _digits(spec: DomainSpec, data_root: Path | None) -> DomainSummary:
    from slimda_nas.data.digits import DIGITS_CLASSES, read_digits

    if data_root is None:
        return DomainSummary(spec.name, spec.name, error="no data root given")
    try:
        arrays = read_digits(spec.name, data_root, download=False)
    except DataError as e:
        return DomainSummary(spec.name, str(data_root / "digits"), error=str(e))
    labels = Counter(int(y) for y in arrays["train"][1])
    counts = {c: labels.get(i, 0) for i, c in enumerate(DIGITS_CLASSES)}
    return DomainSummary(f"{spec.name} (train split)", str(data_root / "digits"), counts)


def _readable(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            img.draft("RGB", (64, 64))  # JPEG: decode at 1/8 scale
            img.load()
        return True
    except Exception:  # truncated, corrupt, not an image: what the loader would skip
        return False
