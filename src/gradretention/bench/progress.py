"""The sweep's progress bar: runs done / total and the time left, on the terminal only.

A listener like any other: it reacts to :class:`~gradretention.bench.events.RunFinished`
and holds no training logic. It draws nothing when stderr is not a terminal (pipes, CI
logs) or under pytest, so logs and test output stay clean.

Example:
    >>> with SweepProgress() as progress:  # doctest: +SKIP
    ...     progress.expect(12)
    ...     progress(RunFinished(result))
"""

from __future__ import annotations

import os
import sys
from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from gradretention.bench.events import Event, RunFinished


def progress_enabled() -> bool:
    """Draw only for a person watching: stderr is a TTY, not under pytest, not in CI."""
    if "PYTEST_CURRENT_TEST" in os.environ or os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return False
    return sys.stderr.isatty()


class SweepProgress:
    """Runs done / total, the status counts so far, elapsed time and ETA.

    Args:
        enabled: Draw the bar; ``None`` decides with :func:`progress_enabled`.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = progress_enabled() if enabled is None else enabled
        self.total = 0
        self.done = 0
        self.statuses: Counter[str] = Counter()
        self._progress: Progress | None = None
        self._task_id = None

    def __enter__(self) -> SweepProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True,
            )  # fmt: skip
            self._progress.start()
            self._task_id = self._progress.add_task("", total=self.total)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def expect(self, runs: int) -> None:
        """``runs`` more runs are about to be submitted."""
        self.total += runs
        if self._progress is not None:
            self._progress.update(self._task_id, total=self.total)

    def __call__(self, event: Event) -> None:
        if not isinstance(event, RunFinished):
            return
        self.done += 1
        self.statuses[event.result.status] += 1
        if self._progress is not None:
            counts = " ".join(f"{status} {n}" for status, n in sorted(self.statuses.items()))
            self._progress.update(self._task_id, completed=self.done, description=counts)
