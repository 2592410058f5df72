"""Sweeps: the tuning protocol, resuming, the store's columns, workers, Ctrl-C in a pool."""

from __future__ import annotations

import dataclasses
import json
import signal
import threading

import pytest

from gradretention.bench.config import SweepConfig
from gradretention.bench.events import RunFinished
from gradretention.bench.executors import LocalExecutor
from gradretention.bench.results import RunConfig
from gradretention.bench.runner import train
from gradretention.bench.store import RUN_COLUMNS, ResultsStore
from gradretention.bench.provenance import optimizer_settings
from gradretention.bench.sweep import (StaleRunsWarning, changed_settings, lr_grid, plan_runs, resolve_optimizers,
                                      run_sweep)
from gradretention.optim import registry

FINAL_KEYS = ("train_loss", "val_loss", "val_accuracy", "val_f1", "test_loss", "test_accuracy", "test_f1",
              "best_val_accuracy", "samples_per_second", "epoch_seconds", "peak_ram_mb", "peak_vram_mb",
              "optimizer_state_bytes")  # fmt: skip
NUMBERS = ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "test_f1", "steps")


class Counter:
    """A listener counting the runs the driver recorded."""

    def __init__(self) -> None:
        self.finished: list[str] = []

    def __call__(self, event) -> None:
        if isinstance(event, RunFinished):
            self.finished.append(event.result.run_id)


def tiny(tmp_path, **changes) -> SweepConfig:
    settings = {"tasks": ("spiral",), "optimizers": ("sgd", "adam"), "seeds": 2, "tune_seeds": 2, "lrs": (0.03, 0.3),
                "max_steps": 12, "log_every": 4, "out": str(tmp_path / "out"), "workers": 1, **changes}  # fmt: skip
    return SweepConfig(**settings)


def test_tiny_sweep_tunes_on_validation_and_reruns_the_best_lr_on_fresh_seeds(tmp_path):
    config = tiny(tmp_path)
    outcome = run_sweep(config)
    with ResultsStore(config.out) as store:
        runs, selections = store.runs(), store.selections()

    assert set(RUN_COLUMNS) | set(FINAL_KEYS) <= set(runs.columns)
    assert len(runs) == 12 and outcome.trained == 12 and (runs["status"] == "done").all()
    tune, final = runs[runs["phase"] == "tune"], runs[runs["phase"] == "final"]
    assert sorted(zip(tune["optimizer"], tune["lr"], tune["seed"])) == [
        (o, lr, s) for o in ("adam", "sgd") for lr in (0.03, 0.3) for s in (0, 1)]  # fmt: skip
    # Tuning and final seeds are disjoint: no final number comes from a run that chose.
    assert set(tune["seed"]).isdisjoint(final["seed"]) and sorted(set(final["seed"])) == [100, 101]
    for optimizer in ("sgd", "adam"):
        rows = tune[tune["optimizer"] == optimizer]
        means = rows.groupby("lr")["val_accuracy"].mean()
        # Highest mean validation accuracy over the tuning seeds wins; on a tie the smaller lr.
        expected = float(means[means == means.max()].index.min())
        assert outcome.best_lrs[("spiral", optimizer)] == expected
        picked = final[final["label"] == optimizer]
        assert sorted(picked["seed"]) == [100, 101] and set(picked["lr"]) == {expected}
        row = selections[selections["label"] == optimizer].iloc[0]
        assert (row["protocol"], row["chosen_spec"], row["chosen_lr"], row["trials"]) == ("grid", optimizer, expected, 0)
        assert row["score"] == pytest.approx(means.max())
        assert json.loads(row["tuning_seeds"]) == [0, 1] and json.loads(row["final_seeds"]) == [100, 101]
        assert json.loads(row["grid"]) == [0.03, 0.3] and row["stop_reason"] == "the listed grid is not extended"
        assert row["edge"] == ("low" if expected == 0.03 else "high")
        assert sorted(json.loads(row["final_run_ids"])) == sorted(picked["run_id"])
    assert set(outcome.final_ids) == set(final["run_id"])


def test_every_run_records_its_resolved_setup(tmp_path):
    config = tiny(tmp_path, optimizers=("adam",), lrs=(0.1,), seeds=1, max_steps=None, epochs=None)
    plan = plan_runs(config, "spiral", "adam", 0.1, [100], "final")[0]
    setup = json.loads(plan.to_json())
    assert setup["epochs"] == 50 and setup["batch_size"] == 32  # spiral's defaults, never null
    assert ["eval_every", "auto"] in [list(item) for item in setup["extra"]] and setup["label"] == "adam"
    assert all(setup[key] is not None for key in ("epochs", "batch_size", "data_seed", "device", "log_every"))


def test_a_spec_that_sets_its_lr_is_not_tuned_and_is_recorded_fixed(tmp_path):
    outcome = run_sweep(tiny(tmp_path, optimizers=("sgd[lr=0.05]", "sgd"), seeds=1))
    with ResultsStore(tmp_path / "out") as store:
        runs, selections = store.runs(), store.selections().set_index("label")
    fixed = runs[runs["label"] == "sgd[lr=0.05]"]
    assert list(fixed["phase"]) == ["final"] and list(fixed["lr"]) == [0.05]
    assert selections.loc["sgd[lr=0.05]", "protocol"] == "fixed"
    assert selections.loc["sgd[lr=0.05]", "stop_reason"] == "lr fixed by spec"
    assert json.loads(selections.loc["sgd[lr=0.05]", "tuning_seeds"]) == []
    assert selections.loc["sgd", "protocol"] == "grid" and len(runs[runs["label"] == "sgd"]) == 2 * 2 + 1
    assert outcome.best_lrs[("spiral", "sgd[lr=0.05]")] == 0.05


def test_rerunning_a_finished_sweep_trains_nothing(tmp_path):
    config = tiny(tmp_path, optimizers=("adam",))
    run_sweep(config)
    with ResultsStore(config.out) as store:
        before = store.runs()[["run_id", "created_at"]]
    counter = Counter()
    outcome = run_sweep(config, listeners=[counter])
    with ResultsStore(config.out) as store:
        after = store.runs()[["run_id", "created_at"]]
    assert counter.finished == [] and outcome.trained == 0
    assert before.equals(after)


def test_interrupted_runs_are_trained_again_on_resume(tmp_path):
    config = tiny(tmp_path, optimizers=("adam",), lrs=(0.1,))
    planned = plan_runs(config, "spiral", "adam", 0.1, config.final_seeds(), "final")
    with ResultsStore(config.out) as store:
        store.record(train(planned[1], should_stop=lambda: True))
        assert store.get(planned[1].run_id).status == "interrupted"
    counter = Counter()
    run_sweep(config, listeners=[counter])
    assert sorted(counter.finished) == sorted(r.run_id for r in planned)
    with ResultsStore(config.out) as store:
        assert list(store.runs()["status"]) == ["done", "done"]


def test_runs_stored_under_other_optimizer_defaults_are_trained_again(tmp_path, monkeypatch):
    config = tiny(tmp_path, optimizers=("adam", "sgd"), lrs=(0.1,))
    run_sweep(config)
    with ResultsStore(config.out) as store:
        before = store.runs().set_index("run_id")
    # A later version changes adam's default eps: its stored runs no longer say what adam means.
    entry = registry.get_entry("adam")
    monkeypatch.setitem(registry._REGISTRY, "adam", dataclasses.replace(entry, defaults={**entry.defaults, "eps": 1e-3}))
    optimizer_settings.cache_clear()
    counter = Counter()
    with pytest.warns(StaleRunsWarning, match=r"adam \(2 runs; changed: eps\)"):
        run_sweep(config, listeners=[counter])
    with ResultsStore(config.out) as store:
        after = store.runs().set_index("run_id")
    retrained = after[after["optimizer"] == "adam"]
    assert sorted(counter.finished) == sorted(retrained.index) and len(retrained) == 2
    assert all(json.loads(s)["eps"] == 1e-3 for s in retrained["optimizer_settings"])
    assert (retrained["train_loss"] != before.loc[retrained.index, "train_loss"]).any()  # eps 1e-3 moves Adam
    untouched = after[after["optimizer"] == "sgd"]
    assert untouched["created_at"].equals(before.loc[untouched.index, "created_at"])
    assert run_sweep(config).trained == 0  # now the store agrees with the code
    optimizer_settings.cache_clear()


def test_runs_recorded_without_settings_are_reused():
    config = RunConfig(task="spiral", optimizer="adam", lr=0.1)
    assert changed_settings(None, config) == () and changed_settings("unknown", config) == ()
    assert changed_settings(optimizer_settings("adam", 0.1), config) == ()
    assert changed_settings(optimizer_settings("adam", 0.2), config) == ("lr",)


def test_a_single_lr_skips_the_tune_phase(tmp_path):
    outcome = run_sweep(tiny(tmp_path, optimizers=("sgd",), lrs=(0.1,), seeds=3))
    assert outcome.tune_ids == () and len(outcome.final_ids) == 3
    with ResultsStore(tmp_path / "out") as store:
        runs = store.runs()
    assert set(runs["phase"]) == {"final"} and set(runs["lr"]) == {0.1}


def test_relative_grid_scales_each_optimizers_default_lr_and_the_default_grid_is_absolute():
    config = SweepConfig(lr_factors=(0.1, 1.0, 10.0))
    assert lr_grid(config, "sgd") == (0.001, 0.01, 0.1)  # sgd's registry default is 1e-2
    assert lr_grid(config, "adam") == (0.0001, 0.001, 0.01)
    assert lr_grid(SweepConfig(lrs=(0.5,)), "adam") == (0.5,)
    assert lr_grid(SweepConfig(lr_factors=()), "adam[lr=0.02]") == (0.02,)
    assert lr_grid(SweepConfig(), "sgd") == lr_grid(SweepConfig(), "adam")  # one shared grid
    assert lr_grid(SweepConfig(), "adam")[::2] == (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def test_unknown_optimizer_or_bad_hyperparameter_fails_before_any_run(tmp_path):
    with pytest.raises(ValueError, match=r"Did you mean 'adam'"):
        resolve_optimizers(["adma"])
    with pytest.raises(ValueError, match=r"Invalid lr value: -1"):
        run_sweep(tiny(tmp_path, optimizers=("sgd[lr=-1]",), lrs=()))
    assert not (tmp_path / "out").exists()


def test_results_do_not_depend_on_the_number_of_workers(tmp_path):
    config = tiny(tmp_path, optimizers=("adam", "sgd"), lrs=(0.1,), max_steps=20)
    run_sweep(config)
    run_sweep(tiny(tmp_path, optimizers=("adam", "sgd"), lrs=(0.1,), max_steps=20, workers=2, out=str(tmp_path / "two")))
    with ResultsStore(tmp_path / "out") as one, ResultsStore(tmp_path / "two") as two:
        a = one.runs().set_index("run_id").sort_index()
        b = two.runs().set_index("run_id").sort_index()
    assert len(a) == 4
    assert a[list(NUMBERS)].equals(b[list(NUMBERS)])


def test_ctrl_c_stops_pool_runs_and_still_yields_them_as_interrupted(python_sigint_handler):
    # Long enough never to finish (they stop at the signal), with the signal late enough that both have
    # started on a loaded machine.
    long_runs = [RunConfig(task="spiral", optimizer="adam", seed=s, epochs=20_000, log_every=5) for s in range(2)]
    results = []
    with LocalExecutor(workers=2) as executor:
        # Warm the pool first so that the signal lands while both long runs are training.
        warm = [RunConfig(task="spiral", optimizer="sgd", seed=s, max_steps=1) for s in range(2)]
        assert [r.status for r in executor.submit_all(warm, None)] == ["done", "done"]
        main_thread = threading.main_thread().ident
        timer = threading.Timer(3.0, signal.pthread_kill, (main_thread, signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            for result in executor.submit_all(long_runs, None):
                results.append(result)
        timer.join()
    assert sorted(r.config.seed for r in results) == [0, 1]
    assert {r.status for r in results} == {"interrupted"}
    assert all(r.reason.startswith("stop requested at step") for r in results)


def test_pool_workers_take_each_sweeps_settings_not_the_forkserver_environment(monkeypatch):
    """A reused worker gets the submitting sweep's GRADRETENTION_* variables with every run."""
    import os

    from gradretention.bench import executors
    from gradretention.bench.results import RunConfig

    monkeypatch.setenv("GRADRETENTION_STALE_SETTING", "from-an-earlier-sweep")
    config = RunConfig(task="spiral", optimizer="sgd", max_steps=1)
    result = executors._run_in_worker(config, None, {"GRADRETENTION_DOWNLOAD": "0"})
    assert result.status == "done"
    assert "GRADRETENTION_STALE_SETTING" not in os.environ
    assert os.environ["GRADRETENTION_DOWNLOAD"] == "0"
    monkeypatch.delenv("GRADRETENTION_DOWNLOAD")


def test_model_path_and_max_len_are_part_of_the_run_identity():
    from gradretention.bench.config import SweepConfig
    from gradretention.bench.sweep import plan_runs

    plain = plan_runs(SweepConfig(), "spiral", "sgd", 0.1, [0], "final")[0]
    longer = plan_runs(SweepConfig(max_len=64), "spiral", "sgd", 0.1, [0], "final")[0]
    assert plain.run_id != longer.run_id and ("max_len", 64) in longer.extra


def test_eval_every_reaches_the_run_and_changes_its_id():
    from gradretention.bench.config import SweepConfig
    from gradretention.bench.runner import train
    from gradretention.bench.sweep import plan_runs

    default = plan_runs(SweepConfig(), "spiral", "sgd", 0.1, [0], "final")[0]
    assert default.extra == (("eval_every", "auto"),)  # recorded, so the stored setup says it
    per_epoch = plan_runs(SweepConfig(eval_every=1), "spiral", "sgd", 0.1, [0], "final")[0]
    assert ("eval_every", 1) in per_epoch.extra and per_epoch.run_id != default.run_id
    sparse = plan_runs(SweepConfig(eval_every=2, epochs=4), "spiral", "sgd", 0.1, [0], "final")[0]
    assert ("eval_every", 2) in sparse.extra
    result = train(sparse)
    epochs = sorted({point.epoch for point in result.curves if point.split == "test" and point.name == "loss"})
    assert epochs == [2.0, 4.0]


def test_a_learning_rate_free_peer_runs_at_lr_1_with_no_grid(tmp_path):
    pytest.importorskip("prodigyopt", reason="the peers extra is not installed")
    from gradretention.bench.protocol.plan import LR_FREE_REASON

    run_sweep(tiny(tmp_path, optimizers=("prodigy", "sgd"), seeds=1))
    with ResultsStore(tmp_path / "out") as store:
        runs, selections = store.runs(), store.selections().set_index("label")
    prodigy = runs[runs["label"] == "prodigy"]
    assert list(prodigy["phase"]) == ["final"] and list(prodigy["lr"]) == [1.0]
    assert prodigy["optimizer_package"].str.startswith("prodigyopt ").all()
    assert selections.loc["prodigy", "protocol"] == "fixed"
    assert selections.loc["prodigy", "stop_reason"] == LR_FREE_REASON
    assert selections.loc["sgd", "protocol"] == "grid"


def test_a_one_point_grid_is_recorded_as_not_tuned(tmp_path):
    run_sweep(tiny(tmp_path, optimizers=("sgd",), lrs=(0.1,), seeds=1))
    with ResultsStore(tmp_path / "out") as store:
        row = store.selections().iloc[0]
    assert (row["protocol"], row["chosen_lr"], row["stop_reason"]) == ("fixed", 0.1, "one grid point: nothing to tune")
    assert json.loads(row["tuning_seeds"]) == [] and json.loads(row["final_seeds"]) == [100]


def test_all_means_the_embedded_tasks_with_held_out_splits():
    from gradretention.bench.sweep import resolve_tasks

    # spiral-nnfs reports on its training points (train = val = test): it cannot be tuned fairly.
    assert resolve_tasks(()) == resolve_tasks(("all",)) == (
        "digits-cnn", "digits-logreg", "digits-mlp", "mnist1d-cnn", "mnist1d-mlp", "spiral")
    assert resolve_tasks(("spiral-nnfs",)) == ("spiral-nnfs",)  # named, it still runs
