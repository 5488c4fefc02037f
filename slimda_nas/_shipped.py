"""The run configs and search spaces shipped inside the package (``slimda_nas/_resources/``).

They are package data, so a checkout, an editable install and a wheel find them the same way;
the repository's ``configs/`` and ``search_spaces/`` folders are links to the same files.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_ROOT = resources.files("slimda_nas") / "_resources"


def _folder(kind: str) -> Path:
    # A package installed from a wheel or a checkout is a real folder on disk: a plain Path
    # lets every reader open, hash and name these files as it would a user's own.
    return Path(str(_ROOT / kind))


def shipped_configs() -> dict[str, Path]:
    """Shipped run configs by name (``usps_mnist`` -> its YAML file)."""
    return {p.stem: p for p in sorted(_folder("configs").glob("*.yaml"))}


def shipped_spaces() -> dict[str, Path]:
    """Shipped search spaces by name (``digits_cnn`` -> its YAML file)."""
    return {p.stem: p for p in sorted(_folder("search_spaces").glob("*.yaml"))}


def is_bare_name(value: str | Path) -> bool:
    """``usps_mnist`` (a shipped name) rather than ``configs/usps_mnist.yaml`` (a path)."""
    p = Path(value)
    return p.suffix == "" and len(p.parts) == 1


def elastic_sibling(space_name: str, backbone: str) -> str | None:
    """The shipped space like ``space_name`` with input resolution and depth as units too
    (``efficientnet_lite0_112`` -> ``efficientnet_lite0_elastic_112``), if one is shipped."""
    if not space_name.startswith(backbone) or "_elastic" in space_name:
        return None
    candidate = f"{backbone}_elastic{space_name[len(backbone) :]}"
    return candidate if candidate in shipped_spaces() else None
