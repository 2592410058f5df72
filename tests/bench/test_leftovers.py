"""Stale report / export temporaries (a writer killed between write and rename) are removed by the next command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from gradretention.bench.leftovers import remove_stale_temporaries
from gradretention.cli import main

RUN = ["run", "--task", "spiral", "--optimizer", "sgd", "--epochs", "1", "--workers", "1", "--threads", "1"]
HOUR = 3600.0


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def left(path, pid: int, age: float = HOUR) -> os.PathLike:
    """A torn temporary file at ``path`` (name with ``{pid}``), last written ``age`` seconds ago."""
    path = path.parent / path.name.format(pid=pid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("torn")
    then = time.time() - age
    os.utime(path, (then, then))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("leftovers") / "out"
    assert main([*RUN, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("command", ["report", "export", "run"])
def test_the_next_command_removes_stale_temporaries_and_nothing_else(finished, tmp_path, command):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    dead = dead_pid()
    stale = [left(out / ".report.html.{pid}-9f3a1c2e.tmp", dead), left(out / ".report.md.{pid}-00ff.tmp", dead),
             left(out / "export" / ".runs.csv.{pid}-abcdef01.tmp", dead)]  # fmt: skip
    kept = [
        left(out / ".report.html.{pid}-9f3a1c2e.tmp", os.getppid()),  # its writer still runs
        left(out / ".report.md.{pid}-1234abcd.tmp", dead, age=-60),  # written after this command started
        left(out / "report.html.{pid}-9f3a1c2e.tmp", dead),  # not our pattern: no leading dot
        left(out / ".notes.txt.{pid}-9f3a1c2e.tmp", dead),  # not a file the report writes
        left(out / ".report.html.tmp", dead),
        left(out / "checkpoints" / ".report.html.{pid}-9f3a1c2e.tmp", dead),  # not the folder's own
    ]
    argv = {"report": ["report", str(out)], "export": ["export", str(out)], "run": [*RUN, "--out", str(out)]}[command]
    assert main(argv) == 0
    assert [path.exists() for path in stale] == [False] * len(stale)
    assert [path.exists() for path in kept] == [True] * len(kept)


def test_a_missing_folder_has_nothing_to_remove(tmp_path):
    assert remove_stale_temporaries(tmp_path / "nowhere", started=time.time()) == []


def test_the_removed_files_are_returned(tmp_path):
    dead = dead_pid()
    stale = left(tmp_path / ".report.html.{pid}-abc.tmp", dead)
    assert remove_stale_temporaries(tmp_path, started=time.time()) == [stale]
    assert remove_stale_temporaries(tmp_path, started=time.time()) == []
