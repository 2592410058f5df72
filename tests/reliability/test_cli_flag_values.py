"""Hostile ``gradretention bench`` flag values: parsed into a config and an executor, or refused cleanly.

The fuzz test parses any value for any config flag the way ``bench`` does (argparse, then
the config, then the executor) and accepts only argparse's exit 2 or a ``ValueError``. The
tests below were issue 20's remaining wrong successes (absurd epochs, ``--lrs ,``,
``--out ''``, no ``--version``, a damaged JSON cell, stale report temporaries, a NaN
evaluation recorded as done); they now hold the fixes.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradretention.bench.config import sweep_config_from_mapping
from gradretention.bench.ray_executor import make_executor
from gradretention.cli import build_parser, main, sweep_values

FUZZ = settings(max_examples=int(os.environ.get("RELIABILITY_EXAMPLES", "60")), deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
_FLAGS = ["--epochs", "--max-steps", "--batch-size", "--lrs", "--lr-factors", "--protocol", "--trials", "--lr-low",
          "--lr-high", "--extend", "--seeds", "--tune-seeds", "--log-every", "--eval-every", "--data-seed",
          "--workers", "--threads", "--device", "--executor", "--cpus-per-run", "--gpus-per-run", "--max-len",
          "--preset", "--checkpoint-every", "--tasks", "--optimizers"]  # fmt: skip
_VALUES = st.one_of(
    st.sampled_from(["0", "-1", "1", "1e23", "100000000000000000000000", "9223372036854775807", "nan", "inf", "-inf",
                     ",", ",,", "", " ", "0.1,", "-0.1,0.2", "1e400", "auto", "cuda:99", "x" * 300, "\x00",
                     "adam[lr=", "spiral,", "[]", "1_000", "0x10", "１２"]),  # fmt: skip
    st.text(max_size=12),
    st.integers(-(2**70), 2**70).map(str),
)


def _config_from(argv: list[str]):
    """What ``bench`` builds from ``argv`` before training: the config and its executor."""
    with contextlib.redirect_stderr(io.StringIO()):
        args = build_parser().parse_args(argv)
    config = sweep_config_from_mapping(sweep_values(args, {}), source="command line")
    return config, make_executor(config.executor, config.workers, config.ray_address, config.cpus_per_run,
                                 config.gpus_per_run, config.threads)  # fmt: skip


@FUZZ
@given(flag=st.sampled_from(_FLAGS), value=_VALUES)
def test_any_flag_value_gives_a_config_or_a_usage_error(flag, value):
    argv = ["bench", "--tasks", "spiral", "--optimizers", "sgd", f"{flag}={value}"]
    try:
        config, executor = _config_from(argv)
    except SystemExit as exit_:
        assert exit_.code == 2, shlex.join(argv)
        return
    except ValueError as error:
        assert str(error), shlex.join(argv)
        return
    executor.close()
    assert config.tasks and config.optimizers


# Issue 20's wrong successes outside the reliability room, each reproduced with at most one tiny run.


def test_an_absurd_epoch_count_is_refused():
    with pytest.raises((SystemExit, ValueError)):
        _config_from(["bench", "--tasks", "spiral", "--optimizers", "sgd", "--epochs", str(10**23)])


def test_an_empty_lr_list_is_refused():
    with pytest.raises((SystemExit, ValueError)):
        _config_from(["bench", "--tasks", "spiral", "--optimizers", "sgd", "--lrs", ","])


def test_an_empty_output_folder_is_refused():
    with pytest.raises((SystemExit, ValueError)):
        _config_from(["bench", "--tasks", "spiral", "--optimizers", "sgd", "--out", ""])


def test_the_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0 and "0." in capsys.readouterr().out


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "out"
    argv = ["run", "--task", "spiral", "--optimizer", "sgd", "--epochs", "1", "--workers", "1", "--threads", "1",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out


def test_a_wrong_type_json_cell_in_the_store_is_a_clear_error(finished_sweep, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(finished_sweep, out)
    with contextlib.closing(sqlite3.connect(out / "runs.db")) as conn, conn:
        run_id = conn.execute("SELECT run_id FROM runs LIMIT 1").fetchone()[0]
        conn.execute("UPDATE runs SET final_json = '[]' WHERE run_id = ?", (run_id,))
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert run_id in err and "final_json" in err


def test_a_stale_temporary_report_file_is_cleaned_on_the_next_report(finished_sweep, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(finished_sweep, out)
    import subprocess
    import sys
    import time

    writer = subprocess.Popen([sys.executable, "-c", "pass"])  # a writer that was killed: its pid runs no more
    writer.wait()
    stale = out / f".report.html.{writer.pid}-deadbeef.tmp"
    stale.write_text("torn")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))  # left by an earlier command
    assert main(["report", str(out)]) == 0
    assert not stale.exists()


def test_a_nan_evaluation_is_recorded_as_a_failure():
    import dataclasses
    import math

    from gradretention.bench.results import RunConfig
    from gradretention.bench.runner import train
    from gradretention.tasks.registry import get_task
    from tests.reliability.fault_tasks import registered

    spiral = get_task("spiral")

    def load(seed: int, data_dir=None):
        data = spiral.load(seed, data_dir)
        inputs = data.test.inputs.clone()
        inputs[0, 0] = math.nan
        return dataclasses.replace(data, test=dataclasses.replace(data.test, inputs=inputs))

    with registered(dataclasses.replace(spiral, name="spiral-nan-test-input", load=load)):
        result = train(RunConfig(task="spiral-nan-test-input", optimizer="sgd", epochs=1))
    assert result.status != "done" and "nan" in (result.reason or "").lower()
