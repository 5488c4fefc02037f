"""Write an export folder atomically: everything goes into a hidden temporary folder beside the
target, which is renamed into place only after every file passed its verification."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from slimda_nas.export.formats import ExportError

MARKER = "model.json"


def check_target(out: Path) -> None:
    """Refuse to replace a folder that is not an earlier export (``--out ~`` must not wipe it)."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ExportError(
            f"--out {out}: the folder exists and is not an earlier export (no {MARKER}); "
            "choose a new or empty folder"
        )


@contextlib.contextmanager
def staging(out: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``out``, on any error it is removed."""
    out = Path(out)
    check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        for f in tmp.iterdir():
            os.chmod(f, 0o644)  # a deployable artefact, not a private cache
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
