"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a file, a field or an argument that the user can correct.

    The message is one line that names the input (file, unit, field or option), what was
    expected and what was found.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        # Keep it one line whatever the caller passed.
        super().__init__(" ".join(str(message).split()))


class SpaceError(UserError):
    """A search-space YAML file is malformed or does not fit its backbone."""


class ConfigError(UserError):
    """A run config or a width configuration is malformed."""


class BudgetError(UserError):
    """A budget string cannot be parsed or cannot be met."""


class DataError(UserError):
    """A dataset, domain or data folder is missing, empty or inconsistent."""


class CheckpointError(UserError):
    """A checkpoint is missing, truncated or belongs to another space or backbone."""


class RunError(UserError):
    """A run folder is missing, incomplete or inconsistent."""


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class Notice(UserWarning):
    """Something the user should know while the command goes on (a repaired file, a capped
    option). The CLI prints it as one line; from Python it is an ordinary warning."""


def check_int(name: str, value: object, low: int, high: int, error: type = UserError) -> int:
    """``value`` as an integer in ``[low, high]``, or one line naming ``name`` and the range.

    Every size a config or an option sets (a batch, a count of images, of iterations, of
    workers) is checked this way before anything is allocated from it.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        allowed = {
            0: f"0 (off) or a positive integer (at most {high:,})",
            1: f"a positive integer (at most {high:,})",
        }.get(low, f"an integer from {low:,} to {high:,}")
        raise error(f"{name}: expected {allowed}, got {value!r}")
    return value
