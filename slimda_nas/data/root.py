"""Where the data files live: ``--data-root``, else ``$SLIMDA_NAS_DATA``, else a cache folder.

Kept free of torch so that decode worker processes import it cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path

from slimda_nas.errors import DataError

ENV_DATA_ROOT = "SLIMDA_NAS_DATA"


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/slimda-nas`` or ``~/.cache/slimda-nas`` (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base).expanduser() if base.strip() else Path.home() / ".cache"
    return root / "slimda-nas"


def default_data_root() -> Path:
    """The folder used when neither the option nor the environment variable is set."""
    return cache_home() / "data"


def resolve_data_root(option: str | Path | None) -> Path:
    """Pick the data root: the option wins, then ``$SLIMDA_NAS_DATA``, then the cache folder.

    An explicit choice (option or environment variable) must name an existing folder: a typo
    there should fail now, not later as a confusing "domain not found". The default cache
    folder may be missing; digits downloads create it.
    """
    if option is not None and str(option).strip():
        return _existing(Path(option).expanduser(), "--data-root")
    env = os.environ.get(ENV_DATA_ROOT, "")
    if env.strip():
        return _existing(Path(env).expanduser(), f"${ENV_DATA_ROOT}")
    return default_data_root()


def _existing(path: Path, origin: str) -> Path:
    if not path.exists():
        raise DataError(
            f"{path}: data root not found (from {origin}; expected an existing folder)"
        )
    if not path.is_dir():
        raise DataError(f"{path}: data root is not a folder (from {origin})")
    return path
