"""Versions of the software that made a report or an export (for whoever reproduces it)."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("slimda-nas", "torch", "optuna", "thop", "numpy", "matplotlib")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
