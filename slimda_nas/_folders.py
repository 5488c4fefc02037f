"""Folders the tool writes whole (reports, exports). Each carries a manifest of the files the
tool wrote in it; only those are ever replaced or removed. Anything else in the folder is the
user's: it is carried over to the new folder untouched, and the user is told so."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from slimda_nas._io import check_output_path, pid_alive, write_json
from slimda_nas.errors import Notice, UserError

MANIFEST = ".slimda-nas-manifest.json"
"""Lists, relative to its folder, every file the tool wrote there."""


def check_replaceable(
    out: Path, is_ours: Callable[[Path], bool], what: str, error, option: str = "--out"
) -> None:
    """Refuse to write ``out`` unless it is missing, empty, or an earlier ``what`` (so that
    ``--out ~`` never wipes a user's files); a link, a device or a FIFO is refused too."""
    try:
        check_output_path(out, option, folder=True)
    except UserError as e:  # raised as the caller's kind of error
        raise error(str(e)) from None
    if out.is_dir() and any(out.iterdir()) and read_manifest(out) is None and not is_ours(out):
        raise error(
            f"{option} {out}: the folder exists and is not an earlier {what}; "
            "choose a new or empty folder"
        )


def read_manifest(folder: Path) -> set[str] | None:
    """The files the tool wrote in ``folder``, or None for a folder without a manifest."""
    try:
        record = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    # an edited manifest must not reach outside its folder ("../x", "/etc/x")
    return {f for f in files if f and all(part not in ("", ".", "..") for part in f.split("/"))}


def _write_manifest(folder: Path, files: set[str]) -> None:
    write_json(folder / MANIFEST, {"tool": "slimda-nas", "files": sorted(files)})


def _files(folder: Path) -> set[str]:
    """Relative paths of the regular files under ``folder`` (what a build wrote)."""
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink() and p.name != MANIFEST
    }


def _foreign(folder: Path, owned: set[str]) -> list[str]:
    """The top-most entries under ``folder`` that the tool did not write: a file not listed,
    a folder holding no listed file, or anything that is not a regular file or folder."""
    dirs = {p for f in owned for p in _parents(f)}
    found: list[str] = []

    def walk(d: Path, rel: str) -> None:
        for e in sorted(os.scandir(d), key=lambda e: e.name):
            r = rel + e.name
            if r == MANIFEST:
                continue
            if r in owned and e.is_file(follow_symlinks=False):
                continue
            if r in dirs and e.is_dir(follow_symlinks=False):
                walk(Path(e.path), r + "/")
                continue
            found.append(r)

    walk(folder, "")
    return found


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _remove_owned(folder: Path, owned: set[str]) -> bool:
    """Remove the listed files, the manifest, then the folders left empty; True if
    ``folder`` itself is gone (nothing of the user's was inside)."""
    for rel in owned | {MANIFEST}:
        p = folder / rel
        if p.is_file() and not p.is_symlink():
            p.unlink()
    for d in sorted({p for f in owned for p in _parents(f)}, key=len, reverse=True) + [""]:
        with contextlib.suppress(OSError):  # not empty: something of the user's is inside
            (folder / d).rmdir()
    return not folder.exists()


def _carry(old: Path, new: Path, owned: set[str]) -> list[str]:
    """Move the user's entries of ``old`` (an earlier folder) into ``new`` unchanged."""
    moved = []
    for rel in _foreign(old, owned):
        dst = new / rel
        if os.path.lexists(dst):
            continue  # only after a kill mid-way: left in the old folder, said below
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(old / rel, dst)
        moved.append(rel)
    return moved


def _finish_old(holder: Path, out: Path) -> list[str]:
    """Carry the user's entries out of a replaced folder (in its holder ``.old`` folder), then
    remove what the tool wrote there; return what was carried."""
    moved: list[str] = []
    for old in list(holder.iterdir()) if holder.is_dir() else []:
        owned = read_manifest(old)
        if owned is None:  # written by an earlier version, all of it its own
            shutil.rmtree(old, ignore_errors=True)
            continue
        if out.is_dir():
            moved += _carry(old, out, owned)
        if not _remove_owned(old, owned):
            warnings.warn(
                Notice(f"{old}: kept, it holds files slimda-nas did not write"), stacklevel=4
            )
    with contextlib.suppress(OSError):
        holder.rmdir()
    return moved


@contextlib.contextmanager
def staged_folder(out: str | Path, option: str = "--out") -> Iterator[Path]:
    """Yield a hidden temporary folder beside ``out``; on success it replaces ``out`` (a reader
    sees the old folder or the new one, never a mix), on any error it is removed.

    Only files the earlier folder's manifest lists are replaced; the user's own files and
    folders in it are moved into the new one (a Notice lists them). Staging folders left by
    a killed process (its pid is in their name) are finished or removed first.
    """
    out = Path(out)
    check_output_path(out, option, folder=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(out)
    tag = f".{out.name}.{os.getpid()}."
    tmp = Path(tempfile.mkdtemp(prefix=tag, suffix=".tmp", dir=out.parent))
    holder = None
    try:
        yield tmp
        wrote = _files(tmp)
        _write_manifest(tmp, wrote)
        os.chmod(tmp, 0o755)
        for f in tmp.rglob("*"):
            os.chmod(f, 0o755 if f.is_dir() else 0o644)  # artefacts to share, not a cache
        if out.exists():
            owned = read_manifest(out)
            if owned is None:  # an earlier version's folder: what this build writes is ours
                owned = wrote & _files(out)
                _write_manifest(out, owned)  # so that a kill from here on loses nothing
            _check_no_clash(out, tmp, owned, option)
            holder = Path(tempfile.mkdtemp(prefix=tag, suffix=".old", dir=out.parent))
            os.replace(out, holder / out.name)
        os.replace(tmp, out)
    except BaseException:
        if holder is not None and not out.exists():
            os.replace(holder / out.name, out)  # put the earlier folder back
            holder.rmdir()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if holder is not None:
        kept = _finish_old(holder, out)
        if kept:
            shown = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
            warnings.warn(
                Notice(f"{out}: kept {len(kept)} entries slimda-nas did not write: {shown}"),
                stacklevel=3,
            )


def _check_no_clash(out: Path, tmp: Path, owned: set[str], option: str) -> None:
    """Refuse, before anything moves, a user's entry where the new build writes a file."""
    for rel in _foreign(out, owned):
        if os.path.lexists(tmp / rel):
            raise UserError(
                f"{option} {out}: {rel} is not a file slimda-nas wrote, and the new build "
                "writes there; move it away and run again"
            )


def _remove_stale_staging(out: Path) -> None:
    for p in out.parent.glob(f".{glob.escape(out.name)}.*"):
        parts = p.name[len(out.name) + 2 :].split(".")
        if p.suffix in (".tmp", ".old") and parts[0].isdecimal() and not pid_alive(int(parts[0])):
            if p.suffix == ".tmp":  # a build never moves a user's file into its staging
                shutil.rmtree(p, ignore_errors=True)
            else:
                _finish_old(p, out)
