"""Write an export folder atomically: everything goes into a hidden temporary folder beside the
target, which is renamed into place only after every file passed its verification."""

from __future__ import annotations

from pathlib import Path

from slimda_nas._folders import check_replaceable, staged_folder
from slimda_nas.export.formats import ExportError
from slimda_nas.export.model_record import MODEL_FILE


def check_target(out: Path) -> None:
    """Refuse to replace a folder that is not an earlier export (``--out ~`` must not wipe it)."""
    check_replaceable(Path(out), lambda p: (p / MODEL_FILE).is_file(), "export", ExportError)


def staging(out: Path):
    """A temporary folder that replaces ``out`` on success (see :func:`staged_folder`)."""
    check_target(Path(out))
    return staged_folder(out)
