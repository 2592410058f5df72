"""The progress bar's time left: mean run time × remaining / parallel runs, counted down on a (fake) clock."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.progress import Progress

from gradretention.bench.events import RunFinished
from gradretention.bench.progress import SweepProgress, _TimeLeft
from gradretention.bench.results import RunConfig, RunResult


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def finished(seconds: float, status: str = "done") -> RunFinished:
    return RunFinished(RunResult(config=RunConfig(task="spiral", optimizer="sgd"), status=status, wall_seconds=seconds))


def test_the_estimate_is_the_mean_run_time_times_remaining_over_workers_counted_down():
    clock = FakeClock()
    progress = SweepProgress(enabled=False, workers=2, clock=clock)
    progress.expect(10)
    assert progress.seconds_left() is None  # nothing finished: no basis for an estimate
    progress(finished(4.0))
    assert progress.seconds_left() == pytest.approx(4.0 * 9 / 2)  # 18 s
    clock.now += 5
    assert progress.seconds_left() == pytest.approx(13.0)  # counts down between finishes
    progress(finished(6.0))
    assert progress.seconds_left() == pytest.approx(5.0 * 8 / 2)  # mean 5 s, 8 left, 2 at a time
    clock.now += 100
    assert progress.seconds_left() == 0.0  # late runs: never negative


def test_the_last_runs_are_not_divided_among_idle_workers():
    clock = FakeClock()
    progress = SweepProgress(enabled=False, workers=8, clock=clock)
    progress.expect(3)
    progress(finished(10.0))
    assert progress.seconds_left() == pytest.approx(10.0)  # two left, both in flight: one run's time
    progress(finished(10.0))
    progress(finished(10.0))
    assert progress.seconds_left() == 0.0


def test_equal_runs_on_two_workers_give_the_true_time_left_after_each_round():
    # Six 11-second runs, two at a time: rounds end at 11, 22 and 33 s.
    clock = FakeClock()
    progress = SweepProgress(enabled=False, workers=2, clock=clock)
    progress.expect(6)
    start = clock.now
    for end in (11.0, 22.0, 33.0):
        clock.now = start + end
        progress(finished(11.0))
        progress(finished(11.0))
        assert progress.seconds_left() == pytest.approx(33.0 - end)


def rendered(column: _TimeLeft) -> str:
    console = Console(record=True, width=40, file=io.StringIO(), color_system=None)
    with Progress(column, console=console, auto_refresh=False) as bar:
        bar.add_task("runs", total=3)
        bar.refresh()
    return console.export_text().strip()


def test_the_bar_shows_the_estimate_as_hours_minutes_seconds():
    clock = FakeClock()
    progress = SweepProgress(enabled=False, workers=1, clock=clock)
    column = _TimeLeft(progress)
    assert rendered(column) == "-:--:--"
    progress.expect(3)
    progress(finished(3725.0))
    assert rendered(column) == "2:04:10"  # 2 runs left x 3725 s
