"""Where studies live: a journal file in the run folder by default, or an RDB URL (PostgreSQL
for several machines). SQLite is refused with several workers (README: it breaks under concurrent writers)."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
import warnings
from pathlib import Path

import optuna

from slimda_nas._io import path_kind
from slimda_nas.errors import Notice, RunError, UserError
from slimda_nas.search._optuna import JOURNAL_OP_CODES, BatchingJournalBackend

JOURNAL = "study.journal"


class StorageError(UserError):
    """The study storage cannot be opened or read."""


def describe(spec: str | None, run_dir: Path) -> str:
    return str(run_dir / JOURNAL) if spec is None else _redact(spec)


def open_run_storage(spec: str | None, run_dir: Path) -> optuna.storages.BaseStorage:
    """The run's study storage for reading; a missing default journal is a one-line error."""
    _check_not_a_broken_url(spec)
    if spec is None or "://" not in spec:
        path = Path(spec) if spec else run_dir / JOURNAL
        if not path.is_file():
            raise RunError(
                f"{path}: no study journal (run `slimda-nas search --run {run_dir}` first)"
            )
    return open_storage(spec, run_dir)  # checks the journal for damage before Optuna reads it


def open_storage(spec: str | None, run_dir: Path, workers: int = 1) -> optuna.storages.BaseStorage:
    """A journal file path (default ``runs/<name>/study.journal``) or an RDB URL."""
    _check_not_a_broken_url(spec)
    if spec is None or "://" not in spec:
        path = Path(spec) if spec else run_dir / JOURNAL
        if spec:
            _check_folder(spec, path.parent)
        return _journal(path)
    scheme, rest = spec.split("://", 1)
    scheme = scheme.lower()
    if scheme.startswith("sqlite") and rest.startswith("/"):
        database = rest[1:].split("?", 1)[0]  # sqlite:///rel, ////abs
        if database and database != ":memory:":
            _check_folder(spec, Path(database).parent)
    if scheme.startswith("sqlite") and workers > 1:
        raise StorageError(
            f"--storage {spec}: SQLite breaks with several worker processes (locked database, "
            "crashed workers, trials left RUNNING); use the default journal file or a PostgreSQL URL"
        )
    if not scheme.startswith(("sqlite", "postgresql", "mysql")):
        raise StorageError(
            f"--storage {_redact(spec)}: expected a journal file path or a sqlite/postgresql/mysql URL"
        )
    kwargs = (
        {}
        if scheme.startswith("sqlite")
        else {
            "heartbeat_interval": 30,
            "grace_period": 120,
            "engine_kwargs": {"pool_pre_ping": True, "connect_args": _connect_args(scheme)},
        }
    )
    attempt = 0
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return optuna.storages.RDBStorage(spec, **kwargs)
        except Exception as e:  # sqlalchemy / driver errors: one line, no traceback
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            attempt += 1
            if not _is_schema_race(reason) or attempt == _SCHEMA_ATTEMPTS:
                raise StorageError(
                    f"--storage {_redact(spec)}: cannot connect ({reason[:200]})"
                ) from None
            time.sleep(0.2 + random.random() * attempt)


# Workers that open a fresh database at the same moment all run CREATE TABLE; PostgreSQL lets
# one win and fails the others on its catalogue's unique indexes. The tables then exist, so
# the losers only need to open the storage again.
_SCHEMA_ATTEMPTS = 6
_SCHEMA_RACE = ("already exists", "duplicate key value", "pg_type_typname_nsp_index")


def _is_schema_race(reason: str) -> bool:
    return any(s in reason for s in _SCHEMA_RACE)


def _connect_args(scheme: str) -> dict:
    return {"connect_timeout": 10} if scheme.startswith("postgresql") else {}


_URL_SCHEME = re.compile(r"(sqlite|postgres(ql)?|mysql)(\+\w+)?:", re.IGNORECASE)


def _check_not_a_broken_url(spec: str | None) -> None:
    """``sqlite:/x`` (one slash short) is a URL mistyped, not a journal in a folder ``sqlite:``."""
    if spec is not None and "://" not in spec and _URL_SCHEME.match(spec):
        scheme = spec.split(":", 1)[0]
        raise StorageError(
            f"--storage {_redact(spec)}: not a URL (expected {scheme}:///path/to/file.db for "
            f"a file, {scheme}://user@host/db for a server) nor a journal file path"
        )


def _check_folder(spec: str, folder: Path) -> None:
    """A mistyped --storage path would otherwise scatter study files into new folders."""
    if not folder.is_dir():
        raise StorageError(
            f"--storage {_redact(spec)}: folder {folder} does not exist (create it, or give a "
            "path in an existing folder)"
        )


def _journal(path: Path) -> optuna.storages.BaseStorage:
    from optuna.storages.journal import JournalFileOpenLock, JournalStorage

    if path_kind(path) not in (None, "file"):  # a link, too: appends go where it points
        raise StorageError(
            f"--storage {path}: not a regular file (expected a journal file path or an RDB URL)"
        )
    if path.is_file():
        check_journal(path)  # appending after a cut line would corrupt every later record
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = BatchingJournalBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        return JournalStorage(backend)
    except PermissionError:
        raise StorageError(f"{path}: cannot write the study journal (permission denied)") from None
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        raise StorageError(
            f"{path}: damaged or truncated study journal ({type(e).__name__}); "
            "move it away to start the search afresh"
        ) from None


def _redact(url: str) -> str:
    """Hide a password in a URL."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def check_journal(path: Path, retry_s: float = 0.5) -> None:
    """Refuse a garbled journal file in one line; repair one whose last record was cut off.

    Optuna silently drops a last line cut mid-way (it may be a write in progress), so a
    truncated file would otherwise give a report of partial studies, and appending after the
    cut line would corrupt every later record. A write in progress is given ``retry_s`` to
    finish; a last line still incomplete after that (a full disk, a killed machine) is cut
    off under the journal's own lock, with a copy of the whole file kept beside it.
    """
    for attempt in range(2):
        data = path.read_bytes()
        problem = _journal_problem(data)
        if problem is None:
            return
        if attempt == 0 and problem[1] == "partial":
            time.sleep(retry_s)
            continue
        line, what = problem
        if what == "partial":
            _drop_torn_tail(path)
            return
        raise StorageError(
            f"{path}: damaged or truncated study journal (line {line}: {what}); "
            "restore it or move it away and search again"
        )


def _drop_torn_tail(path: Path) -> None:
    from optuna.storages.journal import JournalFileOpenLock

    lock = JournalFileOpenLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if _journal_problem(data) != (data.count(b"\n") + 1, "partial") or cut == len(data):
            return  # a writer finished it meanwhile, or the damage is elsewhere (checked again)
        backup = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.torn")
        shutil.copyfile(path, backup)
        with open(path, "r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
    finally:
        lock.release()
    warnings.warn(
        Notice(
            f"{path}: its last record was cut off ({len(data) - cut} bytes, e.g. by a full "
            f"disk); dropped that record and resumed (the whole file is kept as {backup.name})"
        ),
        stacklevel=4,
    )


def _journal_problem(data: bytes) -> tuple[int, str] | None:
    if not data:
        return None
    lines = data.split(b"\n")
    for i, raw in enumerate(lines[:-1], start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return i, "not UTF-8 text"
        except ValueError:
            return i, "not a JSON record"
        if not isinstance(rec, dict) or "op_code" not in rec:
            return i, "not an Optuna journal record"
        if rec["op_code"] not in JOURNAL_OP_CODES:
            return i, f"unknown operation {rec['op_code']!r}"
    if lines[-1].strip():
        # a record cut off: after complete ones, or the first one begun (Optuna writes
        # '{"op_code":' first); a text file of one line is no journal to repair
        if len(lines) > 1 or lines[-1].startswith(b'{"op_code"'):
            return len(lines), "partial"
        return 1, "not an Optuna journal record"
    return None
