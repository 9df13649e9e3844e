"""The campaign's progress bar (rich): done / total, failed so far, elapsed and ETA.

Quiet when stderr is not a terminal (CI logs, pytest, pipes): a bar redrawn into a file is noise,
and the summary table at the end says everything it would have said.
"""
from __future__ import annotations

import sys
from typing import Any, Optional


class Progress:
    def __init__(self, name: str, total: int, enabled: Optional[bool] = None) -> None:
        self.name, self.total = name, total
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.failed = 0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> "Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("failed: {task.fields[failed]}"), TimeElapsedColumn(),
                            TextColumn("ETA"), TimeRemainingColumn(),
                            console=Console(file=sys.stderr), transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.name, total=self.total, failed=0)
        return self

    def advance(self, result: Any) -> None:
        if getattr(result, "failing", False):
            self.failed += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, failed=self.failed)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
