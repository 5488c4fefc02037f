"""Write an export folder atomically: everything goes into a hidden temporary folder beside the
target, which is renamed into place only after every file passed its verification."""

from __future__ import annotations

from pathlib import Path

from slimda_nas._folders import check_replaceable, staged_folder
from slimda_nas.export.formats import ExportError
from slimda_nas.export.model_record import ExportRecord


def check_target(out: Path) -> None:
    """Refuse to replace a folder that is not an earlier export (``--out ~`` must not wipe it,
    nor a TF.js model whose ``model.json`` is not ours)."""
    check_replaceable(Path(out), _is_export, "export", ExportError)


def _is_export(folder: Path) -> bool:
    try:
        ExportRecord.read(folder)
    except ExportError:
        return False
    return True


def staging(out: Path):
    """A temporary folder that replaces ``out`` on success (see :func:`staged_folder`)."""
    check_target(Path(out))
    return staged_folder(out)
