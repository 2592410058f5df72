"""SIGKILL a sweep at random moments, rerun it: every run once, the same numbers, a sound store.

The sweep is the real command line (``gradretention bench``, ``main([...])``) in a forked
child, killed with SIGKILL after a seeded random delay. Trials share an output folder,
so each rerun resumes from whatever the previous kill left. Each kill point is drawn over
the *remaining* work (after a random number of the missing runs, a random fraction of a
run or of the report), so kills land in store creation, training, recording and report
writing alike, whatever the machine's load. A folder whose sweep
finished before its kill, or whose last kill could only hit the report, is set aside and
the next trial starts a fresh one. At the end a clean rerun finishes every folder, whose
store must then equal, bit for bit, that of a sweep that was never interrupted. A second
test does the same with every run checkpointing each epoch and resuming from its last
checkpoint (``--checkpoint-every 1 --resume``), so kills also land in checkpoint writes.
"""

from __future__ import annotations

import contextlib
import io
import random
import sqlite3
import time
from pathlib import Path

import pandas as pd
import pytest

from gradretention.bench.checkpoint import read_checkpoint_extra
from gradretention.bench.store import DB_NAME
from gradretention.cli import main

from . import forked
from .sweeps import (
    PLANNED_RUNS,
    STORE_TABLES,
    bench_args,
    curve_indices_are_whole,
    deterministic_view,
    eval_metrics,
    integrity,
    recorded_runs,
    store_tables,
)

TRIALS = 20
CHECKPOINT_TRIALS = 6


def _timed_run(out: Path, log: Path) -> float:
    started = time.perf_counter()
    child = forked.run(lambda: main(bench_args(out)), log)
    assert child.returncode == 0, child.output()
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted sweep, and how long a whole sweep and a no-op rerun take in a warm child."""
    folder = tmp_path_factory.mktemp("reference")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(bench_args(folder / "warm-up", epochs=1)) == 0  # imports and caches the children inherit
    sweep_seconds = _timed_run(folder / "out", folder / "reference.log")
    report_seconds = _timed_run(folder / "out", folder / "rerun.log")  # trains nothing: startup + report
    return folder / "out", sweep_seconds, report_seconds


class _Pace:
    """How long one run and the report take in a child, learnt while the trials go (load varies)."""

    def __init__(self, sweep_seconds: float, report_seconds: float) -> None:
        self.run = max(sweep_seconds - report_seconds, 0.1) / PLANNED_RUNS
        self.report = report_seconds


def _recorded_now(out: Path) -> int:
    try:
        return recorded_runs(out)[0]
    except sqlite3.Error:  # the child is creating the store right now
        return 0


def _kill_at(child: forked.Child, out: Path, target: int, fraction: float, pace: _Pace) -> bool:
    """SIGKILL ``fraction`` of a run (of the report, if ``target`` is every run) after ``target`` runs are in.

    Returns whether the child was still running when killed.
    """
    started = previous_time = time.monotonic()
    previous = _recorded_now(out)
    while child.poll() is None and (count := _recorded_now(out)) < target:
        now = time.monotonic()
        if count > previous:  # learn the pace of this machine, now
            pace.run = (now - previous_time) / (count - previous)
            previous, previous_time = count, now
        if now - started > 300:
            raise TimeoutError(f"{target} runs not recorded after 300 s:\n{child.output()}")
        time.sleep(0.02)
    time.sleep(fraction * (pace.report if target == PLANNED_RUNS else pace.run))
    return child.kill()


def _crash_trials(tmp_path, reference, trials, extra_args=()):
    """Kill-and-rerun trials; returns the folders used and one observation per trial.

    Each kill point is random in the sweep's progress: after a random number of the runs
    still missing are recorded, a random fraction of a run (or of the report) later.
    """
    pace = _Pace(*reference[1:])
    rng = random.Random(20240909 + len(extra_args))
    folders = [tmp_path / "crashed-0"]
    observations = []
    for trial in range(trials):
        out = folders[-1]
        before = _recorded_now(out)
        target, fraction = rng.randint(before, PLANNED_RUNS), rng.random()
        child = forked.start(lambda: main([*bench_args(out), *extra_args]), tmp_path / f"trial-{trial}.log")
        killed = _kill_at(child, out, target, fraction, pace)
        if not killed:  # it finished first, so it must have succeeded (a stale lock would exit 2)
            assert child.returncode == 0, child.output()
            pace.report /= 2 if target == PLANNED_RUNS else 1
        if not killed or target == PLANNED_RUNS:  # sweep over (this kill hit the report at most): next folder
            folders.append(tmp_path / f"crashed-{len(folders)}")
        if (out / DB_NAME).exists():
            assert integrity(out) == "ok", f"trial {trial}: store corrupted by SIGKILL"
            assert store_tables(out) in (frozenset(), STORE_TABLES), f"trial {trial}: half a schema after SIGKILL"
            assert curve_indices_are_whole(out), f"trial {trial}: half-written curves after SIGKILL"
        rows, distinct = recorded_runs(out)
        assert before <= rows == distinct <= PLANNED_RUNS
        observations.append((trial, out.name, target, round(fraction, 2), killed, before, rows))
    print("trial, folder, kill after runs + fraction, killed while running, runs before, runs after:",
          *observations, sep="\n  ")  # fmt: skip
    assert any(killed for *_, killed, _, _ in observations)  # the kills did interrupt sweeps
    assert any(before < PLANNED_RUNS and killed for *_, killed, before, _ in observations)
    return folders, observations


def _assert_finished_like(out, reference_out, log, extra_args=()):
    final = forked.run(lambda: main([*bench_args(out), *extra_args]), log)
    assert final.returncode == 0, final.output()
    assert integrity(out) == "ok" and recorded_runs(out) == (PLANNED_RUNS, PLANNED_RUNS)
    runs, curves = deterministic_view(out)
    expected_runs, expected_curves = deterministic_view(reference_out)
    assert (runs["status"] == "done").all()
    pd.testing.assert_frame_equal(runs, expected_runs, check_exact=True)
    pd.testing.assert_frame_equal(curves, expected_curves, check_exact=True)
    assert eval_metrics(out) == eval_metrics(reference_out)
    # A report a kill interrupted was rewritten whole.
    assert (out / "report.html").read_text(encoding="utf-8").rstrip().endswith("</html>")


def test_sigkill_at_random_moments_then_a_rerun_keeps_every_run_exactly_once(tmp_path, reference):
    folders, _ = _crash_trials(tmp_path, reference, TRIALS)
    for out in folders:
        _assert_finished_like(out, reference[0], tmp_path / f"final-{out.name}.log")


def test_sigkill_while_runs_checkpoint_every_epoch_then_resume_gives_the_same_numbers(tmp_path, reference):
    # Kills now land in checkpoint writes too; a resumed run continues from the last whole one.
    resume = ("--checkpoint-every", "1", "--resume")
    folders, _ = _crash_trials(tmp_path, reference, CHECKPOINT_TRIALS, resume)
    for out in folders:
        _assert_finished_like(out, reference[0], tmp_path / f"final-{out.name}.log", resume)
        for path in (out / "checkpoints").glob("*.pt"):
            assert read_checkpoint_extra(path).epoch >= 1  # never a torn checkpoint, whatever the kill hit
