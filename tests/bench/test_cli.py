"""The command line, in-process through ``main([...])`` and once as a killed subprocess."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import torch

from gradretention.bench.store import ResultsStore
from gradretention.cli import ask_names, main
from gradretention.tasks.registry import available_tasks


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def recorded(out) -> int:
    """Runs in ``out``'s store, read with plain sqlite so that it works while a sweep writes."""
    try:
        with sqlite3.connect(f"file:{out / 'runs.db'}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return 0


def runs_of(out):
    with ResultsStore(out, read_only=True) as store:
        return store.runs()


def test_run_with_a_huge_lr_records_diverged(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--task", "spiral", "--optimizer", "sgd[lr=1e6]", "--out", str(out)]) == 0
    runs = runs_of(out)
    assert list(runs["status"]) == ["diverged"] and list(runs["lr"]) == [1e6]
    assert "exceeds 100x the first step's loss" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--task", "spiral", "--optimizer", "adma"], ["Unknown optimizer 'adma'", "Did you mean 'adam'", "adam_hd"]),
        (["bench", "--tasks", "spiral", "--optimizers", "adam,sgd_hdd"], ["Did you mean 'sgd_hd'", "Valid names:"]),
        (["run", "--task", "spirl", "--optimizer", "adam"], ["Unknown task 'spirl'", "Did you mean 'spiral'", "digits-mlp"]),
        (["bench", "--tasks", "spiral", "--optimizers", "adam_hd[hypergrad_lr=-1e-5]"],
         ["Invalid hypergrad_lr value: -1e-05 (valid: >= 0)"]),
        (["bench", "--tasks", "spiral", "--optimizers", "adam", "--lrs", "0.1,-1"], ["lrs must be positive"]),
        (["bench", "--suite", "adagrad-lectur"], ["Did you mean 'adagrad-lecture'"]),
        (["bench", "--suite", "adagrad-lecture", "--optimizers", "adam"], ["drop --optimizers"]),
        (["bench", "--epochs", "2", "--max-steps", "3"], ["not allowed with argument"]),
        (["report", "nowhere"], ["no results store at nowhere"]),
        (["export", "nowhere", "--format", "csv"], ["no results store at nowhere"]),
    ],
)
def test_bad_input_exits_2_with_the_valid_choices(tmp_path, capsys, argv, expected):
    if argv[0] in ("run", "bench"):
        argv = [*argv, "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err
    assert not (tmp_path / "out" / "runs.db").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_exits_2(tmp_path, capsys):
    argv = ["run", "--task", "spiral", "--optimizer", "adam", "--device", "cuda", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_unknown_toml_key_exits_2_listing_the_valid_keys(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text('optimizer = ["adam"]\n', encoding="utf-8")
    assert main(["bench", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) 'optimizer'" in err and "valid keys: tasks, optimizers, seeds" in err


def test_unwritable_output_folder_exits_2_and_overwrites_nothing(tmp_path, capsys):
    blocker = tmp_path / "results.txt"
    blocker.write_text("keep me", encoding="utf-8")
    code = main(["run", "--task", "spiral", "--optimizer", "adam", "--max-steps", "1", "--out", str(blocker / "sub")])
    assert code == 2
    assert "cannot create results folder" in capsys.readouterr().err
    assert blocker.read_text(encoding="utf-8") == "keep me"


def test_store_of_an_incompatible_version_exits_2_untouched(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with sqlite3.connect(out / "runs.db") as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '999')")
    conn.close()
    before = (out / "runs.db").read_bytes()
    assert main(["run", "--task", "spiral", "--optimizer", "adam", "--max-steps", "1", "--out", str(out)]) == 2
    assert "schema_version 999" in capsys.readouterr().err
    assert (out / "runs.db").read_bytes() == before


def test_interactive_refuses_to_prompt_in_ci(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CI", "true")
    assert main(["bench", "--interactive", "--out", str(tmp_path / "out")]) == 2
    assert "--interactive needs a terminal" in capsys.readouterr().err


def test_ask_names_repeats_the_question_until_the_names_are_valid():
    from gradretention.bench.sweep import resolve_tasks

    stdout = io.StringIO()
    names = ask_names("tasks", available_tasks(), resolve_tasks, io.StringIO("spirl\nspiral, digits-mlp\n"), stdout)
    assert names == ("spiral", "digits-mlp")
    assert "Did you mean 'spiral'" in stdout.getvalue()
    assert ask_names("tasks", available_tasks(), resolve_tasks, io.StringIO("\n"), io.StringIO()) == ("all",)
    with pytest.raises(ValueError, match="input ended"):
        ask_names("tasks", available_tasks(), resolve_tasks, io.StringIO(""), io.StringIO())


def test_list_prints_tasks_and_optimizers(capsys):
    assert main(["list", "tasks"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in available_tasks())
    assert main(["list"]) == 0
    assert "adam_hd" in capsys.readouterr().out


def test_suite_runs_the_lecture_shortened_and_writes_a_report(tmp_path, capsys):
    out = tmp_path / "lecture"
    assert main(["bench", "--suite", "adagrad-lecture", "--epochs", "30", "--out", str(out)]) == 0
    runs = runs_of(out).sort_values("optimizer")
    assert list(runs["optimizer"]) == ["adagrad[eps=1e-07,lr=1,lr_decay=0.0001]", "momentum[lr=1,momentum=0.9]", "sgd[lr=1]"]
    assert set(runs["status"]) == {"done"} and set(runs["steps"]) == {30}  # full batch: one step per epoch
    extras = [dict(json.loads(c)["extra"]) for c in runs["config_json"]]
    assert [e.get("lr_decay") for e in extras] == [None, 1e-3, 1e-3]
    assert "Report: " in capsys.readouterr().out and (out / "report.html").is_file()


def test_ctrl_c_records_the_run_in_flight_and_exits_130(tmp_path, capsys):
    out = tmp_path / "out"
    main_thread = threading.main_thread().ident

    def interrupt_once_one_run_is_recorded() -> None:
        deadline = time.monotonic() + 120
        while recorded(out) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        signal.pthread_kill(main_thread, signal.SIGINT)

    watcher = threading.Thread(target=interrupt_once_one_run_is_recorded)
    watcher.start()
    code = main(["bench", "--tasks", "spiral", "--optimizers", "adam", "--lrs", "0.01", "--seeds", "3",
                 "--epochs", "150", "--workers", "1", "--out", str(out)])  # fmt: skip
    watcher.join()
    assert code == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    runs = runs_of(out).sort_values("seed")
    assert list(zip(runs["seed"], runs["status"])) == [(0, "done"), (1, "interrupted")]


def test_sweep_killed_with_sigkill_resumes_with_every_run_once(tmp_path):
    out = tmp_path / "X"
    argv = ["bench", "--tasks", "spiral", "--optimizers", "adam,adam_hd", "--seeds", "2", "--epochs", "3", "--out", str(out)]
    env = {**os.environ, "CI": "true"}
    process = subprocess.Popen([sys.executable, "-m", "gradretention", *argv], start_new_session=True, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 180
    while recorded(out) < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # the driver and its pool workers, mid-sweep
    process.wait()
    before = recorded(out)
    assert 1 <= before < 10, "the kill should land mid-sweep"

    assert main([*argv, "--workers", "1"]) == 0  # run ids do not depend on workers; in-process is quicker
    runs = runs_of(out)
    # 2 optimizers x 3 grid lrs on the tune seed, then 2 optimizers x 2 seeds.
    assert len(runs) == 10 and runs["run_id"].is_unique
    assert set(runs["status"]) == {"done"}
    assert sorted(runs["phase"].value_counts().items()) == [("final", 4), ("tune", 6)]


def test_delegated_commands_are_listed_and_dispatched(capsys, tmp_path):
    from gradretention.cli import DELEGATED, build_parser, main

    help_text = build_parser().format_help()
    assert all(name in help_text for name in DELEGATED)
    assert main(["data", "--data-dir", str(tmp_path)]) == 0
    assert "missing" in capsys.readouterr().out
