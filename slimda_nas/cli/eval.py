"""``slimda-nas eval``."""

from __future__ import annotations


def register(sub) -> None:
    pass
