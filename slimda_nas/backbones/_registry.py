"""Backbones are registered by name; the name is what search spaces and run configs use."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from slimda_nas.backbones._base import SlimBackbone
from slimda_nas.errors import ConfigError

_F = TypeVar("_F", bound=Callable[..., SlimBackbone])
_BUILDERS: dict[str, Callable[..., SlimBackbone]] = {}


def register_backbone(name: str) -> Callable[[_F], _F]:
    """Register a builder under ``name``; a second builder with the same name is refused."""

    def wrap(fn: _F) -> _F:
        if name in _BUILDERS:
            raise ValueError(f"backbone {name!r} is already registered")
        _BUILDERS[name] = fn
        return fn

    return wrap


def list_backbones() -> list[str]:
    return sorted(_BUILDERS)


def get_builder(name: str) -> Callable[..., SlimBackbone]:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown backbone {name!r}: expected one of {', '.join(list_backbones())}"
        ) from None


def build_backbone(name: str, **kwargs) -> SlimBackbone:
    """Build the registered backbone ``name`` (e.g. ``num_classes=10, heads=("cs","ct","ca")``)."""
    return get_builder(name)(**kwargs)
