"""``slimda-nas search``."""

from __future__ import annotations


def register(sub) -> None:
    pass
