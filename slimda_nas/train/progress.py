"""A rich progress bar for training (silent when disabled or not on a terminal)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    def __init__(
        self, start: int, total: int, enabled: bool = True, title: str = "training"
    ) -> None:
        self.enabled = enabled
        self.console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
            transient=False,
        )
        self._task = self._progress.add_task(title, total=total, completed=start, loss="-")

    def __enter__(self) -> TrainProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def update(self, done: int, loss: float) -> None:
        if self.enabled:
            self._progress.update(self._task, completed=done, loss=f"{loss:.3f}")

    def note(self, text: str) -> None:
        if self.enabled:
            self._progress.console.print(text)
