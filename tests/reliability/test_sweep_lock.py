"""One sweep per output folder: a second one is refused with the holder named; crashes leave no lock."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys

import pytest

from gradretention.bench.lock import LOCK_NAME, LockHolder, SweepLock, SweepLockedError, read_holder
from gradretention.bench.store import DB_NAME, StoreError
from gradretention.bench.sweep import run_configs, run_sweep
from gradretention.cli import main

from . import forked
from .sweeps import PLANNED_RUNS, Gate, bench_args, integrity, recorded_runs, tiny_config, wait_for


def _paused_sweep(tmp_path, out):
    """A forked sweep stopped after its first recorded run, holding the lock."""
    child = forked.start(lambda: run_sweep(tiny_config(out), listeners=[Gate(tmp_path)]) and None,
                         tmp_path / "first.log")  # fmt: skip
    wait_for(tmp_path / "paused")
    return child


def test_a_second_bench_process_is_refused_naming_the_holder_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    first = _paused_sweep(tmp_path, out)
    try:
        second = subprocess.run([sys.executable, "-m", "gradretention", *bench_args(out)], capture_output=True,
                                text=True, timeout=300, cwd=tmp_path)  # fmt: skip
        assert recorded_runs(out) == (1, 1)  # the second process recorded nothing
    finally:
        (tmp_path / "resume").touch()
    assert second.returncode == 2, second.stderr
    message = " ".join(second.stderr.split())  # undo the console's soft wrapping
    assert message.startswith("gradretention bench: error: output folder")
    assert "in use by another sweep" in message and "Traceback" not in message
    assert f"pid {first.pid} on host {socket.gethostname()}" in message
    assert f"command: {shlex.join(sys.orig_argv)}" in message and "started 20" in message
    assert not (out / "report.html").exists()

    assert first.wait() == 0, first.output()
    assert recorded_runs(out) == (PLANNED_RUNS, PLANNED_RUNS) and integrity(out) == "ok"


def test_the_lock_of_a_sigkilled_sweep_does_not_block_the_next(tmp_path):
    out = tmp_path / "out"
    crashed = _paused_sweep(tmp_path, out)
    assert crashed.kill()
    # The dead holder's details stay in the file, but the kernel dropped its flock.
    assert read_holder(out).pid == crashed.pid
    outcome = run_sweep(tiny_config(out))
    assert outcome.trained == PLANNED_RUNS - 1 and recorded_runs(out) == (PLANNED_RUNS, PLANNED_RUNS)
    assert read_holder(out).pid == os.getpid()  # the lock file now names the last holder


def test_a_held_lock_refuses_run_sweep_and_run_configs_before_any_store_write(tmp_path):
    out = tmp_path / "out"
    with SweepLock(out) as lock:
        with pytest.raises(SweepLockedError, match=f"pid {os.getpid()} on host") as caught:
            run_sweep(tiny_config(out))
        with pytest.raises(SweepLockedError):
            run_configs([], out, executor=None)
        assert lock.held
    assert isinstance(caught.value, StoreError)  # so the command line exits 2 with the message
    assert caught.value.holder.pid == os.getpid() and caught.value.path == out / LOCK_NAME
    assert not (out / DB_NAME).exists()  # refused before the store was even opened
    assert not lock.held
    with SweepLock(out):  # released: it can be taken again
        pass


def test_the_command_line_exits_2_while_another_sweep_holds_the_folder(tmp_path, capsys):
    out = tmp_path / "out"
    with SweepLock(out):
        assert main(bench_args(out)) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert f"is in use by another sweep (pid {os.getpid()}" in error and str(out / LOCK_NAME) in error


def test_unreadable_or_stale_holder_details_are_not_passed_off_as_the_holder(tmp_path):
    out = tmp_path / "out"
    finished = forked.run(lambda: 0, tmp_path / "gone.log")  # a pid that no longer runs
    with SweepLock(out):
        (out / LOCK_NAME).write_text("not json")
        with pytest.raises(SweepLockedError, match="a process whose details could not be read"):
            SweepLock(out).acquire()
        stale = LockHolder(finished.pid, socket.gethostname(), "2020-01-01T00:00:00+00:00", "gradretention bench")
        (out / LOCK_NAME).write_text(json.dumps(stale.__dict__))
        with pytest.raises(SweepLockedError, match="could not be read") as caught:
            SweepLock(out).acquire()
    assert caught.value.holder is None


def test_one_lock_object_cannot_be_acquired_twice(tmp_path):
    lock = SweepLock(tmp_path).acquire()
    try:
        with pytest.raises(RuntimeError, match="already held"):
            lock.acquire()
    finally:
        lock.release()
    lock.release()  # releasing twice is harmless
