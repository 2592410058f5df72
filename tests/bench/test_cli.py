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

import pandas.testing
import pytest
import torch

from gradretention.bench.store import ResultsStore
from gradretention.bench.suites import all_suites
from gradretention.cli import ask_names, main
from gradretention.tasks.registry import available_tasks


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
        (["bench", "--tasks", "spiral", "--optimizers", "adam", "--lrs", "0.1,-1"], ["argument --lrs: every value must be a positive"]),
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


def test_ctrl_c_records_the_run_in_flight_and_exits_130(tmp_path, capsys, python_sigint_handler):
    out = tmp_path / "out"
    main_thread = threading.main_thread().ident

    def interrupt_once_one_run_is_recorded() -> None:
        deadline = time.monotonic() + 120
        while recorded(out) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # past the gap between runs (a signal there finds nothing in flight), inside the next run
        signal.pthread_kill(main_thread, signal.SIGINT)

    watcher = threading.Thread(target=interrupt_once_one_run_is_recorded)
    watcher.start()
    code = main(["bench", "--tasks", "spiral", "--optimizers", "adam", "--lrs", "0.01", "--seeds", "10",
                 "--epochs", "300", "--workers", "1", "--out", str(out)])  # fmt: skip
    watcher.join()
    assert code == 130
    assert "to resume, run: gradretention bench --tasks spiral --optimizers adam" in capsys.readouterr().err
    runs = runs_of(out).sort_values("seed")
    # On a loaded machine a further run may finish before the signal lands: whatever the count,
    # the finished runs come first, in seed order, and exactly the run in flight is `interrupted`.
    done = len(runs) - 1
    assert 1 <= done < 9  # 10 planned seeds leave room for the signal's latency on a loaded machine
    assert list(zip(runs["seed"], runs["status"])) == [(100 + i, "done") for i in range(done)] + [
        (100 + done, "interrupted")]


def test_sweep_killed_with_sigkill_resumes_with_every_run_once(tmp_path):
    out = tmp_path / "X"
    argv = ["bench", "--tasks", "spiral", "--optimizers", "adam,adam_hd", "--seeds", "2", "--epochs", "3",
            "--lr-factors", "0.1,1,10", "--tune-seeds", "1", "--out", str(out)]  # fmt: skip
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


def stored_configs(out) -> list[dict]:
    return [json.loads(c) for c in runs_of(out)["config_json"]]


def test_preset_seed_plan_is_reflected_in_the_recorded_config(tmp_path):
    out = tmp_path / "out"
    argv = ["run", "--task", "spiral", "--optimizer", "adam", "--preset", "seed-plan", "--epochs", "1", "--out", str(out)]
    assert main(argv) == 0
    [config] = stored_configs(out)
    # Batch 32, lr 1e-3 and weight decay 1e-4 from the preset; --epochs wins over its 50.
    assert (config["optimizer"], config["lr"], config["batch_size"], config["epochs"]) == (
        "adam[lr=0.001,weight_decay=0.0001]", 0.001, 32, 1)  # fmt: skip
    assert list(runs_of(out)["steps"]) == [6]  # 180 spiral training points in batches of 32


@pytest.fixture
def settings_probe(monkeypatch):
    """A task whose load notes the data settings its run sees (loads happen inside the run)."""
    from gradretention.tasks import datacache, registry, text_tasks
    from gradretention.tasks.base import Task

    seen: dict[str, object] = {}

    def load(seed, data_dir):
        seen.update(download=datacache.download_enabled(), model=text_tasks.model_path(),
                    max_len=text_tasks.max_length(256))  # fmt: skip
        return registry.get_task("spiral").load(seed, data_dir)

    task = Task(name="test-settings-probe", description="notes settings", load=load,
                build_model=registry.get_task("spiral").build_model)  # fmt: skip
    monkeypatch.setitem(registry.TASKS, task.name, task)
    for name in (datacache.DOWNLOAD_ENV, text_tasks.MODEL_PATH_ENV, text_tasks.MAX_LEN_ENV):
        monkeypatch.delenv(name, raising=False)
    return task.name, seen


def test_download_model_path_and_max_len_reach_the_run_and_are_put_back(tmp_path, settings_probe):
    from gradretention.tasks import datacache, text_tasks

    task, seen = settings_probe
    model = tmp_path / "my-encoder"
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    argv = ["run", "--task", task, "--optimizer", "adam", "--max-steps", "1", "--download", "--model-path", str(model),
            "--max-len", "16", "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    assert seen == {"download": True, "model": model, "max_len": 16}
    # The command's settings end with it: the next command in this process starts clean.
    assert not datacache.download_enabled() and text_tasks.max_length(256) == 256
    assert main([*argv[:7], "--out", str(tmp_path / "out2")]) == 0
    assert seen["download"] is False and seen["max_len"] == 256 and seen["model"] != model


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--model-path", "no-such-model"], ["no Hugging Face model folder at no-such-model", "config.json"]),
        (["--max-len", "1"], ["max_len must be >= 2, got 1"]),
        (["--checkpoint-every", "0"], ["checkpoint_every must be >= 1, got 0"]),
        (["--preset", "seed-plna"], ["Unknown preset 'seed-plna'", "Did you mean 'seed-plan'", "Valid presets: seed-plan"]),
    ],
)
def test_bad_new_flags_exit_2_before_anything_is_written(tmp_path, capsys, flags, expected):
    out = tmp_path / "out"
    assert main(["run", "--task", "spiral", "--optimizer", "adam", *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert all(text in err for text in expected), err
    assert not out.exists()


def test_checkpoint_every_writes_one_checkpoint_per_run_and_keeps_the_run_id(tmp_path):
    from gradretention.bench.checkpoint import checkpoint_path, read_checkpoint_extra

    plain, checkpointed = tmp_path / "plain", tmp_path / "checkpointed"
    argv = ["bench", "--tasks", "spiral", "--optimizers", "adam,sgd", "--lr-factors", "1", "--seeds", "1",
            "--epochs", "3", "--workers", "1"]  # fmt: skip
    assert main([*argv, "--out", str(plain)]) == 0
    assert main([*argv, "--checkpoint-every", "2", "--out", str(checkpointed)]) == 0
    ids = sorted(runs_of(checkpointed)["run_id"])
    assert ids == sorted(runs_of(plain)["run_id"])
    for run_id in ids:  # every 2 epochs, and the last: epoch 3 is what remains
        assert read_checkpoint_extra(checkpoint_path(checkpointed, run_id)).epoch == 3
    assert not (plain / "checkpoints").exists()


def test_resume_continues_each_run_from_its_checkpoint(tmp_path):
    from gradretention.bench.checkpoint import checkpoint_path
    from gradretention.bench.results import RunConfig
    from gradretention.bench.runner import Checkpointing, train

    reference, resumed, ignored = tmp_path / "reference", tmp_path / "resumed", tmp_path / "ignored"
    argv = ["run", "--task", "spiral", "--optimizer", "adam", "--epochs", "4", "--log-every", "5"]
    assert main([*argv, "--out", str(reference)]) == 0
    [row] = stored_configs(reference)
    config = RunConfig(**{**row, "extra": tuple(map(tuple, row["extra"]))})
    assert config.run_id == runs_of(reference)["run_id"][0]
    for out in (resumed, ignored):  # a run stopped after its 2nd epoch, as Ctrl-C would leave it
        path = checkpoint_path(out, config.run_id)
        result = train(config, checkpointing=Checkpointing(out, every=2), should_stop=path.is_file)
        assert (result.status, result.steps) == ("interrupted", 12)
        # Mark the checkpoint: a run continued from it carries 1000 s of earlier wall time.
        document = torch.load(path, weights_only=True)
        document["extra"]["wall_seconds"] = 1000.0
        torch.save(document, path)

    assert main([*argv, "--resume", "--out", str(resumed)]) == 0
    assert main([*argv, "--out", str(ignored)]) == 0
    wall = {out.name: float(runs_of(out)["wall_seconds"][0]) for out in (reference, resumed, ignored)}
    assert wall["resumed"] >= 1000 > wall["ignored"]

    def numbers(out):
        runs = runs_of(out)
        metrics = sorted(c for c in runs.columns if c.startswith(("train_", "val_", "test_", "best_val_", "grad_")))
        with ResultsStore(out, read_only=True) as store:
            curves = store.curves()
        curves = curves[~curves["name"].isin(["epoch_seconds", "samples_per_second"])]
        return runs[[*metrics, "status", "steps", "steps_to_target"]], curves.drop(columns="run_id").reset_index(drop=True)

    for out in (resumed, ignored):  # the same numbers, bit for bit (timings aside)
        for mine, theirs in zip(numbers(out), numbers(reference)):
            pandas.testing.assert_frame_equal(mine, theirs, check_exact=True)


def test_hd_paper_and_variance_plan_plan_the_seed_material_runs():
    from gradretention.bench.suites import suite_configs

    hd = suite_configs("hd-paper")
    assert len(hd) == 18 and {c.batch_size for c in hd} == {128} and {c.seed for c in hd} == {0}
    assert [(c.task, c.epochs) for c in hd[::6]] == [("mnist-logreg", 20), ("mnist-mlp", 100), ("cifar10-vgg16", 200)]
    adam_hd = [c.optimizer for c in hd if c.optimizer.startswith("adam_hd")]
    assert adam_hd == ["adam_hd[hypergrad_lr=1e-07,lr=0.001,weight_decay=0.0001]"] * 2 + [
        "adam_hd[hypergrad_lr=1e-08,lr=0.001,weight_decay=0.0001]"]  # fmt: skip
    assert {c.optimizer for c in hd if c.optimizer.startswith("sgdn_hd")} == {
        "sgdn_hd[hypergrad_lr=0.001,lr=0.001,momentum=0.9,weight_decay=0.0001]"}  # fmt: skip
    assert {c.lr for c in hd} == {0.001}

    variance = suite_configs("variance-plan")
    assert len(variance) == 4 * 5 * 5
    assert {(c.batch_size, c.epochs) for c in variance} == {(32, 50)}
    assert sorted({c.task for c in variance}) == ["cifar10-resnet18", "imdb-lstm", "mnist-cnn", "squad-bert"]
    assert [c.seed for c in variance[:6]] == [0, 1, 2, 3, 4, 0]
    assert "adam_var[lr=0.001,lr_scaling=0.1,variance_smoothing=0.9,weight_decay=0.0001]" in {c.optimizer for c in variance}
    # --seeds and --epochs reshape the plan; the run ids follow the configs.
    short = suite_configs("variance-plan", seeds=2, epochs=1)
    assert len(short) == 40 and {c.epochs for c in short} == {1} and {c.seed for c in short} == {0, 1}


def test_real_data_suite_without_data_exits_2_naming_the_missing_files(tmp_path, capsys):
    argv = ["bench", "--suite", "hd-paper", "--data-dir", str(tmp_path / "data"), "--workers", "1",
            "--out", str(tmp_path / "out")]  # fmt: skip
    (tmp_path / "data").mkdir()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and str(tmp_path / "data") in err
    assert recorded(tmp_path / "out") == 0


def test_every_suite_is_listed_and_an_unknown_one_lists_them_all(tmp_path, capsys):
    assert main(["list", "suites"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("adagrad-lecture", "hd-paper", "variance-plan"))
    assert main(["bench", "--suite", "hd-papr", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'hd-paper'" in err and f"Valid suites: {', '.join(sorted(all_suites()))}" in err
    assert main(["bench", "--suite", "variance-plan", "--preset", "seed-plan", "--out", str(tmp_path / "out")]) == 2
    assert "drop --preset" in capsys.readouterr().err
    config = tmp_path / "plan.toml"
    config.write_text('preset = "seed-plan"\nbatch_size = 8\n', encoding="utf-8")
    assert main(["bench", "--suite", "hd-paper", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "drop --batch-size, --preset" in capsys.readouterr().err
