"""A full disk, a read-only folder, a write cut short: a clear error, and finished results intact.

Faults are real: a tmpfs filled to the brim and a read-only bind mount (in a private
mount namespace, where the machine allows it), and ``RLIMIT_FSIZE`` (everywhere), which
makes writes past a size fail with EFBIG as a quota would.
"""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest
import torch

from gradretention.bench.checkpoint import load_checkpoint, save_checkpoint
from gradretention.bench.export import OutputError, export_results
from gradretention.bench.report import build_report
from gradretention.bench.store import DB_NAME, ResultsStore
from gradretention.cli import main

from . import forked
from .faults import (
    bind_read_only,
    fill,
    free_bytes,
    mount_tmpfs,
    mounts_available,
    private_mount_namespace,
    size_limited,
)
from .sweeps import PLANNED_RUNS, bench_args, curve_indices_are_whole, deterministic_view, integrity, recorded_runs

needs_mounts = pytest.mark.skipif(not mounts_available(), reason="needs root to mount a tmpfs in a private namespace")
SEEDED_RUNS = 4


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A finished sweep of ``adam`` alone: the first 4 of the tiny sweep's 8 runs, and its report."""
    out = tmp_path_factory.mktemp("seeded") / "out"
    args = bench_args(out)
    args[args.index("--optimizers") + 1] = "adam"
    assert main(args) == 0
    return out


def _copy(seeded, target):
    shutil.copytree(seeded, target)
    return target


def _seeded_runs_intact(seeded, out) -> bool:
    before, _ = deterministic_view(seeded)
    after, _ = deterministic_view(out)
    return after[after["run_id"].isin(before["run_id"])].reset_index(drop=True).equals(before)


def test_a_write_limit_hit_mid_sweep_stops_it_with_a_clear_error_and_a_rerun_resumes(tmp_path, seeded):
    out = _copy(seeded, tmp_path / "out")
    limit = (out / DB_NAME).stat().st_size + 30_000  # the WAL fills up after a few runs
    child = forked.run(size_limited(limit, lambda: main(bench_args(out))), tmp_path / "limited.log")
    assert child.returncode == 2, child.output()
    message = " ".join(child.output().split())
    assert "gradretention bench: error: could not record run" in message and "disk I/O error" in message
    assert "the runs recorded before are intact" in message and "rerun the same command to resume" in message
    assert "Traceback" not in message
    rows, distinct = recorded_runs(out)
    assert SEEDED_RUNS < rows == distinct < PLANNED_RUNS  # it stopped part-way, after recording some
    assert integrity(out) == "ok" and curve_indices_are_whole(out) and _seeded_runs_intact(seeded, out)

    assert main(bench_args(out)) == 0
    assert recorded_runs(out) == (PLANNED_RUNS, PLANNED_RUNS) and integrity(out) == "ok"


def _full_disk_scenario(seeded, mnt, leave, keep_lock, facts_path, resume):
    """In a child: a tmpfs with ``leave`` bytes free holding the seeded store; the sweep; the facts."""

    def scenario() -> int:
        private_mount_namespace()
        mount_tmpfs(mnt, "16m")
        out = _copy(seeded, mnt / "out")
        # As a store closed by its last reader: no -shm/-wal (SQLite recreates the -shm on open).
        for name in ("runs.db-shm", "runs.db-wal", *(() if keep_lock else (".lock",))):
            (out / name).unlink(missing_ok=True)
        fill(mnt, leave)
        facts = {"free": free_bytes(mnt), "code": main(bench_args(out))}
        (mnt / "filler").unlink()  # sqlite needs room for its -shm even to read: free the disk first
        facts.update(integrity=integrity(out), runs=recorded_runs(out), whole=curve_indices_are_whole(out),
                     intact=_seeded_runs_intact(seeded, out))  # fmt: skip
        if resume:
            facts.update(resumed_code=main(bench_args(out)), resumed_runs=recorded_runs(out))
        facts_path.write_text(json.dumps(facts))
        return 0

    return scenario


@needs_mounts
@pytest.mark.parametrize(
    ("leave", "keep_lock", "expected"),
    [
        (0, False, r"cannot write the lock file \S+/\.lock: No space left on device; the output folder must be "
                   r"writable and have free space"),
        (0, True, r"cannot open results store \S+/runs\.db: disk I/O error \(the file system holding \S+ has \d+ "
                  r"bytes free\)"),
        (96 << 10, True, r"could not record run \w+ \('sgd' on task 'spiral', seed 0\) in \S+: database or "
                         r"disk is full \(the file system holding \S+ has \d+ bytes free\); nothing of this run "
                         r"was written"),
    ],
    ids=["full-before-the-lock", "full-before-the-store", "full-mid-sweep"],
)  # fmt: skip
def test_a_full_disk_gives_a_clear_error_and_leaves_the_finished_runs_intact(tmp_path, seeded, leave, keep_lock,
                                                                              expected):  # fmt: skip
    facts_path = tmp_path / "facts.json"
    resume = leave > 0
    scenario = _full_disk_scenario(seeded, tmp_path / "mnt", leave, keep_lock, facts_path, resume)
    child = forked.run(scenario, tmp_path / "child.log")
    assert child.returncode == 0, child.output()
    facts = json.loads(facts_path.read_text())
    message = " ".join(child.output().split())
    assert facts["free"] <= leave and facts["code"] == 2 and "Traceback" not in message
    assert re.search("gradretention bench: error: " + expected, message), message
    assert facts["integrity"] == "ok" and facts["whole"] and facts["intact"]
    assert facts["runs"] == [SEEDED_RUNS, SEEDED_RUNS]  # the sweep wrote nothing it could not finish
    if resume:
        assert facts["resumed_code"] == 0 and facts["resumed_runs"] == [PLANNED_RUNS, PLANNED_RUNS]


@needs_mounts
def test_a_read_only_output_folder_is_refused_clearly_and_stays_readable(tmp_path, seeded):
    out = _copy(seeded, tmp_path / "out")
    before = {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()}
    facts_path = tmp_path / "facts.json"

    def scenario() -> int:
        private_mount_namespace()
        bind_read_only(out)
        facts = {"bench": main(bench_args(out)), "export": main(["export", str(out)])}
        with ResultsStore(out, read_only=True) as store:  # archived results stay readable
            facts["readable_runs"] = len(store.runs())
        facts_path.write_text(json.dumps(facts))
        return 0

    child = forked.run(scenario, tmp_path / "child.log")
    assert child.returncode == 0, child.output()
    facts = json.loads(facts_path.read_text())
    message = " ".join(child.output().split())
    assert facts == {"bench": 2, "export": 2, "readable_runs": SEEDED_RUNS}
    assert f"gradretention bench: error: cannot create the lock file {out}/.lock: Read-only file system" in message
    export_error = f"gradretention export: error: cannot create the export folder {out}/export: Read-only file system"
    assert export_error in message
    assert "Traceback" not in message
    assert {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()} == before


def test_an_output_path_under_a_regular_file_is_refused_before_any_training(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    assert main(bench_args(tmp_path / "file" / "out")) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert f"gradretention bench: error: cannot create results folder {tmp_path}/file/out: Not a directory" in error


def test_an_export_folder_that_is_a_file_gives_an_output_error_naming_it(tmp_path, seeded, capsys):
    out = _copy(seeded, tmp_path / "out")
    (out / "export").write_text("in the way")
    with pytest.raises(OutputError, match=f"cannot create the export folder {out}/export"):
        export_results(out, "csv")
    assert main(["export", str(out)]) == 2
    assert "cannot create the export folder" in capsys.readouterr().err


def test_a_report_that_cannot_be_written_exits_2_with_the_path(tmp_path, seeded, capsys):
    out = _copy(seeded, tmp_path / "out")
    (out / "report.md").unlink()
    (out / "report.md").mkdir()  # in the way of the atomic rename
    assert main(["report", str(out)]) == 2
    assert f"{out}/report.md" in capsys.readouterr().err


# Atomic writes: a write cut short by the size limit leaves the previous file whole and no temp file.


def _temp_files(folder):
    return sorted(path.name for path in folder.rglob("*.tmp"))


def test_an_export_cut_short_leaves_the_previous_tables_whole(tmp_path, seeded):
    out = _copy(seeded, tmp_path / "out")
    export_results(out, "csv")
    previous = "run_id,step\nprevious,1\n"
    (out / "export" / "curves.csv").write_text(previous)

    def cut_short() -> int:
        try:
            export_results(out, "csv")
        except OutputError as error:
            print(error)
            return 3
        return 0

    child = forked.run(size_limited(40_000, cut_short), tmp_path / "child.log")  # runs.csv fits, curves.csv not
    assert child.returncode == 3, child.output()
    assert f"cannot write {out}/export/curves.csv: File too large; the previous export" in child.output()
    assert (out / "export" / "curves.csv").read_text() == previous and _temp_files(out) == []
    assert len(pd.read_csv(out / "export" / "runs.csv")) == SEEDED_RUNS


def test_a_report_cut_short_leaves_the_previous_report_whole(tmp_path, seeded):
    out = _copy(seeded, tmp_path / "out")
    (out / "report.html").write_text("<html>previous</html>")
    child = forked.run(size_limited(50_000, lambda: build_report(out) and 0), tmp_path / "child.log")
    assert child.returncode == forked.CRASHED and "File too large" in child.output()
    assert (out / "report.html").read_text() == "<html>previous</html>" and _temp_files(out) == []
    build_report(out)  # with room again, the report is written whole
    assert (out / "report.html").read_text().rstrip().endswith("</html>")


def test_a_checkpoint_cut_short_leaves_the_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "checkpoints" / "run.pt"
    small = torch.nn.Linear(4, 2)
    save_checkpoint(path, small, None, epoch=3)
    previous = path.read_bytes()
    big = torch.nn.Linear(400, 200)  # 320 KB of weights: past the limit
    child = forked.run(size_limited(100_000, lambda: save_checkpoint(path, big, None, epoch=4) and 0),
                       tmp_path / "child.log")  # fmt: skip
    assert child.returncode == forked.CRASHED and "File too large" in child.output()
    assert path.read_bytes() == previous and _temp_files(tmp_path) == []
    restored = torch.nn.Linear(4, 2)
    assert load_checkpoint(path, restored).epoch == 3
    assert torch.equal(restored.weight, small.weight)
