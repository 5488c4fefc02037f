"""Parsing ``source->target`` task strings into domain specs.

Accepted domain texts:

* ``mnist``, ``usps``, ``mnist_m`` (also ``digits:<name>``): the digit sets;
* ``<dataset>:<domain>``, e.g. ``office31:amazon``: ``<root>/<dataset>/<domain>/[images/]<class>/*``;
* ``folder:<path>``: an explicit class-per-folder directory;
* ``list:<path>``: a list file of ``<image path> <label>`` lines.

In a task a bare target domain inherits the source's dataset: ``office31:amazon->webcam``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from slimda_nas.errors import DataError

DIGITS = ("mnist", "usps", "mnist_m")
_DIGIT_ALIASES = {
    "mnist": "mnist",
    "usps": "usps",
    "mnist_m": "mnist_m",
    "mnist-m": "mnist_m",
    "mnistm": "mnist_m",
}
_KINDS = ("digits", "folder", "list")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_EXPECTED = (
    "expected mnist, usps, mnist_m, <dataset>:<domain> (e.g. office31:amazon), "
    "folder:<path> or list:<path>"
)


@dataclass(frozen=True)
class DomainSpec:
    """One domain. ``kind`` is ``digits``, ``folder`` or ``list``; ``dataset`` is ``digits`` for
    the digit sets and the dataset folder (``office31``) for ``<dataset>:<domain>``; ``path`` is
    set for ``folder:`` and ``list:`` domains."""

    kind: str
    name: str
    dataset: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise DataError(
                f"domain {self.name!r}: kind: expected one of {_KINDS}, got {self.kind!r}"
            )

    def __str__(self) -> str:
        if self.kind == "digits":
            return self.name
        if self.path is not None:
            return f"{self.kind}:{self.path}"
        return f"{self.dataset}:{self.name}"

    @property
    def is_digits(self) -> bool:
        return self.kind == "digits"


@dataclass(frozen=True)
class Task:
    """A ``source -> target`` adaptation task; ``str(task)`` gives the canonical text."""

    source: DomainSpec
    target: DomainSpec

    def __str__(self) -> str:
        target = str(self.target)
        if (
            self.target.kind == "folder"
            and self.target.path is None
            and self.target.dataset == self.source.dataset
            and self.source.path is None
        ):
            target = self.target.name  # office31:amazon->webcam
        return f"{self.source}->{target}"


def parse_task(text: str) -> Task:
    """Parse ``"usps->mnist"``, ``"office31:amazon->webcam"``, ``"folder:/a->folder:/b"`` ...

    Spaces around ``->`` are allowed. Digits and image domains cannot be mixed (their inputs
    have different sizes and classes).
    """
    if not isinstance(text, str):
        raise DataError(f"task: expected a string like 'usps->mnist', got {text!r}")
    parts = text.split("->")
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        raise DataError(
            f"task {text!r}: expected '<source>-><target>', e.g. 'usps->mnist' or "
            "'office31:amazon->webcam'"
        )
    source = parse_domain(parts[0], task=text)
    target = parse_domain(parts[1], task=text, inherit=source)
    if source.is_digits != target.is_digits:
        raise DataError(
            f"task {text!r}: cannot mix digits and image domains ({source} -> {target})"
        )
    return Task(source, target)


def parse_domain(
    text: str, *, task: str | None = None, inherit: DomainSpec | None = None
) -> DomainSpec:
    """Parse one domain text; a bare name takes ``inherit``'s dataset when it has one."""
    where = f"task {task!r}: " if task is not None else ""
    raw = text.strip()
    head, sep, rest = raw.partition(":")
    if sep and head.lower() in ("folder", "list"):
        path = rest.strip()
        if not path:
            raise DataError(f"{where}domain {raw!r}: expected a path after '{head}:'")
        pure = PurePath(path)
        name = pure.name if head.lower() == "folder" else pure.stem
        return DomainSpec(head.lower(), name or path, None, path)
    if sep:
        dataset, domain = head.strip(), rest.strip()
        if dataset.lower() == "digits":
            return _digits(domain, raw, where)
        for value in (dataset, domain):
            if not _NAME.match(value):
                raise DataError(f"{where}unknown domain {raw!r}: {_EXPECTED}")
        return DomainSpec("folder", domain, dataset, None)
    if raw.lower() in _DIGIT_ALIASES:
        return _digits(raw, raw, where)
    if (
        inherit is not None
        and inherit.kind == "folder"
        and inherit.path is None
        and _NAME.match(raw)
    ):
        return DomainSpec("folder", raw, inherit.dataset, None)
    raise DataError(f"{where}unknown domain {raw!r}: {_EXPECTED}")


def _digits(name: str, raw: str, where: str) -> DomainSpec:
    canonical = _DIGIT_ALIASES.get(name.lower())
    if canonical is None:
        raise DataError(
            f"{where}unknown digits domain {raw!r}: expected one of {', '.join(DIGITS)}"
        )
    return DomainSpec("digits", canonical, "digits", None)
