"""Training methods, registered by name: ``slimda``, ``symnet``, ``source_only``."""

from __future__ import annotations

from slimda_nas.errors import ConfigError
from slimda_nas.methods._base import HEADS, Method
from slimda_nas.methods.slimda import SlimDA
from slimda_nas.methods.source_only import SourceOnly
from slimda_nas.methods.symnet import SymNet

METHODS: dict[str, type[Method]] = {m.name: m for m in (SlimDA, SymNet, SourceOnly)}


def build_method(name: str, **seed_options) -> Method:
    """The method ``name``; SEED options (temperature, weight, confidence) apply to the methods
    that distil (``slimda``)."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}: expected one of {', '.join(METHODS)}")
    return METHODS[name].from_options(**seed_options)


__all__ = ["HEADS", "METHODS", "Method", "SlimDA", "SourceOnly", "SymNet", "build_method"]
