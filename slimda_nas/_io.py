"""Atomic writes of files and of whole folders: a reader, or a killed writer, never leaves a
half-written file or folder behind."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def write_yaml(path: str | Path, obj: Any) -> Path:
    return write_text(path, yaml.safe_dump(obj, sort_keys=False))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


# -- folders replaced whole -------------------------------------------------------------------------
def check_replaceable(out: Path, is_ours: Callable[[Path], bool], what: str, error) -> None:
    """Refuse to replace ``out`` unless it is missing, empty, or an earlier ``what`` (so that
    ``--out ~`` never wipes a user's files)."""
    if out.exists() and not out.is_dir():
        raise error(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not is_ours(out):
        raise error(
            f"--out {out}: the folder exists and is not an earlier {what}; "
            "choose a new or empty folder"
        )


@contextlib.contextmanager
def staged_folder(out: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary folder beside ``out``; on success it replaces ``out`` whole (a
    reader sees the old folder or the new one, never a mix), on any error it is removed.

    Staging folders left by a killed process (its pid is in their name) are removed first.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(out)
    tag = f".{out.name}.{os.getpid()}."
    tmp = Path(tempfile.mkdtemp(prefix=tag, suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        for f in tmp.rglob("*"):
            os.chmod(f, 0o755 if f.is_dir() else 0o644)  # artefacts to share, not a cache
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=tag, suffix=".old", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_stale_staging(out: Path) -> None:
    for p in out.parent.glob(f".{glob.escape(out.name)}.*"):
        parts = p.name[len(out.name) + 2 :].split(".")
        if p.suffix in (".tmp", ".old") and parts[0].isdigit() and not pid_alive(int(parts[0])):
            shutil.rmtree(p, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """A process of this machine with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
