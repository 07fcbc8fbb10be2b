"""The terminal: one console width rule and one progress bar for every room.

``terminal_console()`` is rich's Console at the terminal's width, or a fixed width when the output is a
pipe or a log file (rich would fall back to 80 columns there and wrap every table). ``Bar`` is
a rich progress bar (description, bar, done/total, status fields, elapsed time) that is nothing
at all when disabled, so callers never branch on ``--no-progress``.

It sits at the bottom of `platform/` (beside `errors` and `options`): the engine's sweep loop,
the workers' parent, one-shot and the CLI all draw with it.
"""
from __future__ import annotations

from typing import Any

PIPE_WIDTH = 160  # columns when stdout is not a terminal


def terminal_console(min_width: int | None = None):
    """A rich Console: the terminal's width (at least ``min_width``), ``PIPE_WIDTH`` in a pipe."""
    from rich.console import Console

    probe = Console()
    if not probe.is_terminal:
        return Console(width=max(PIPE_WIDTH, min_width or 0))
    return Console(width=max(probe.width, min_width)) if min_width else Console()


class Bar:
    """``description [====   ] done/total <status> elapsed``; ``status`` is a format string over
    the keyword fields (``"best {best}"``), given their first values in ``fields``."""

    def __init__(self, description: str, total: float | None, enabled: bool = True, console=None,
                 status: str = "{status}", **fields: Any):
        self.bar = None
        self._console = console
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = status.replace("{", "{task.fields[").replace("}", "]}")
        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(columns),
            TimeElapsedColumn(), console=console or terminal_console(), transient=False,
        )
        self.task = self.bar.add_task(description, total=total, **({"status": ""} | fields))
        self.bar.start()

    @property
    def enabled(self) -> bool:
        return self.bar is not None

    def update(self, completed: float, **fields: Any) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=completed, **fields)

    def print(self, *args, **kwargs) -> None:
        """Print above the bar (or to the console when there is no bar)."""
        target = self.bar.console if self.bar is not None else (self._console or terminal_console())
        target.print(*args, **kwargs)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
