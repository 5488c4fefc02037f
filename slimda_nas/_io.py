"""Atomic writes of files and of whole folders: a reader, or a killed writer, never leaves a
half-written file or folder behind."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from slimda_nas.errors import UserError


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.errno in _DISK_FULL and not e.filename:
            # a full disk is reported without a path: name the folder (the old file is kept)
            raise OSError(e.errno, os.strerror(e.errno), str(path.parent)) from None
        raise
    return path


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> Path:
    # surrogateescape: a path decoded under the C locale (no UTF-8 mode) holds its non-ASCII
    # bytes as surrogates; they are written back as the bytes they were
    return write_bytes(path, text.encode("utf-8", "surrogateescape"))


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


# -- what may be written over -----------------------------------------------------------------------
def path_kind(path: str | Path) -> str | None:
    """What is at ``path`` without following a link: None (nothing), ``"file"``, ``"folder"``,
    ``"symbolic link"``, ``"FIFO"``, ``"device"`` or ``"socket"``."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "socket"


def check_output_path(
    path: str | Path, option: str | None = None, *, folder: bool = False
) -> None:
    """The one rule for every path the tool writes: only a regular file (or, with ``folder``,
    a folder) is ever written over; a link, a device, a FIFO or a socket is refused, since
    replacing it would replace what it stands for (``--out /dev/stdout --force`` as root).

    ``option`` names the command-line option the path came from, for the message.
    """
    kind = path_kind(path)
    name = f"{option} {path}" if option else str(path)
    if kind in (None, "folder" if folder else "file"):
        return
    if kind in ("file", "folder"):
        expected = "a folder" if folder else "a file path"
        raise UserError(f"{name}: is a {kind}, expected {expected}")
    raise UserError(
        f"{name}: is a {kind}; slimda-nas only writes over regular files and folders it wrote "
        "(choose another path)"
    )


# -- one writer per run folder --------------------------------------------------------------------
@contextlib.contextmanager
def exclusive_lock(path: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the block, or refuse at once in one line if
    another process holds it. The kernel drops the lock with its holder, so a killed command
    never leaves a stale lock behind."""
    path = Path(path)
    check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            pid = os.pread(fd, 20, 0).decode("ascii", "replace").strip()
            holder = f"pid {pid}" if pid.isdecimal() else "another process"
            raise UserError(
                f"{path.parent}: {what} is already running here ({holder}); wait for it "
                "to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def pid_alive(pid: int) -> bool:
    """A process of this machine with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
