"""The sweep's progress bar: runs done / total and the time left, on the terminal only.

A listener like any other: it reacts to :class:`~gradretention.bench.events.RunFinished`
and holds no training logic. It draws nothing when stderr is not a terminal (pipes, CI
logs) or under pytest, so logs and test output stay clean.

The time left is estimated from the runs themselves, not from the rate of recent
completions (rich's own estimate, which read 0:00:01 with 11 s to go after two parallel
runs finished together)::

    left = mean(finished runs' wall seconds) × remaining / min(workers, remaining)

set when a run finishes and counted down on the clock until the next one does.

Example:
    >>> with SweepProgress() as progress:  # doctest: +SKIP
    ...     progress.expect(12)
    ...     progress(RunFinished(result))
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections import Counter
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

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
        workers: Runs that train at the same time (the executor's workers).
        clock: Seconds on a monotonic clock (a fake one in tests).
    """

    def __init__(self, enabled: bool | None = None, workers: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.enabled = progress_enabled() if enabled is None else enabled
        self.total = 0
        self.done = 0
        self.statuses: Counter[str] = Counter()
        self.workers = max(1, workers)
        self._clock = clock
        self._run_seconds = 0.0
        self._estimate: tuple[float, float] | None = None  # (seconds left, clock reading when estimated)
        self._progress: Progress | None = None
        self._task_id = None

    def __enter__(self) -> SweepProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                TimeElapsedColumn(), TextColumn("ETA"), _TimeLeft(self),
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
        self._run_seconds += event.result.wall_seconds
        remaining = max(self.total - self.done, 0)
        mean = self._run_seconds / self.done
        self._estimate = (mean * remaining / max(min(self.workers, remaining), 1), self._clock())
        if self._progress is not None:
            counts = " ".join(f"{status} {n}" for status, n in sorted(self.statuses.items()))
            self._progress.update(self._task_id, completed=self.done, description=counts)

    def seconds_left(self) -> float | None:
        """The estimated seconds until the last expected run finishes; ``None`` before any finished."""
        if self._estimate is None:
            return None
        left, since = self._estimate
        return max(left - (self._clock() - since), 0.0)


class _TimeLeft(ProgressColumn):
    """:meth:`SweepProgress.seconds_left` as ``h:mm:ss`` (``-:--:--`` until a run has finished)."""

    def __init__(self, progress: SweepProgress) -> None:
        super().__init__()
        self.progress = progress

    def render(self, task: Task) -> Text:
        left = self.progress.seconds_left()
        shown = "-:--:--" if left is None else str(dt.timedelta(seconds=round(left)))
        return Text(shown, style="progress.remaining")
