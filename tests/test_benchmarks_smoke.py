"""The benchmark scripts run end to end at a tiny size and print the documented JSON.

No timings are asserted: the numbers depend on the machine. The scripts are loaded from
``benchmarks/`` and driven through their ``main(argv)``, as the command line runs them.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ROW_KEYS = {"name", "ms_per_step", "ratio_to_fused_adam", "state_bytes_per_param", "ratio_to_floor"}


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_optimizer_step_prints_one_row_per_optimizer_with_the_documented_keys(capsys):
    names = ["adam_hd", "sgd_hd", "rescaled_sgd", "enhanced_sgd", "adam_var"]
    script = load_script("optimizer_step")
    assert script.main(["--params", "100000", "--repeats", "1", "--threads", "1", "--only", ",".join(names),
                        "--json", "--device", "cpu"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == [script.BASELINE, *names]
    for row in rows:
        assert ROW_KEYS <= set(row)
        assert row["ms_per_step"] > 0 and row["ratio_to_fused_adam"] > 0 and row["ratio_to_floor"] > 0
    state = {row["name"]: row["state_bytes_per_param"] for row in rows}
    # float32 state: Adam-HD keeps exactly Adam's two moments; the others one parameter-sized buffer.
    assert state["adam_hd"] == pytest.approx(8.0, abs=0.01) and state[script.BASELINE] >= 8.0
    for name in ("sgd_hd", "rescaled_sgd", "enhanced_sgd"):
        assert state[name] == pytest.approx(4.0, abs=0.01)
    assert rows[0]["ratio_to_fused_adam"] == 1.0 and rows[0]["ratio_to_floor"] == 1.0


def test_every_registry_optimizer_has_a_floor():
    from gradretention.optim import available_optimizers

    script = load_script("optimizer_step")
    assert sorted(set(available_optimizers()) - set(script.FLOOR_BYTES)) == []


def test_optimizer_step_table_and_a_bad_name(capsys):
    script = load_script("optimizer_step")
    assert script.main(["--params", "20000", "--repeats", "1", "--threads", "1", "--only", "sgd_hd",
                        "--device", "cpu"]) == 0
    table = capsys.readouterr().out
    assert "sgd_hd" in table and "fused Adam on cpu" in table and "x floor" in table
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--only", "sgd_hdd"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "unknown optimizer(s) sgd_hdd" in message and "sgd_hd" in message


def test_harness_throughput_checks_equal_losses_and_reports_the_shares(capsys):
    script = load_script("harness_throughput")
    assert script.main(["--tasks", "digits-mlp", "--share-tasks", "spiral", "--epochs", "1", "--share-epochs", "2",
                        "--repeats", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (row,) = report["throughput"]
    assert row["task"] == "digits-mlp" and row["identical_losses"] is True and row["max_loss_difference"] == 0.0
    assert row["speedup"] > 0 and row["batch_size"] == 64 and row["steps_per_epoch"] >= 1
    (share,) = report["overhead"]
    assert share["task"] == "spiral" and share["epochs"] == 2
    assert 0 <= share["total_share"] <= 1
    assert share["total_share"] == pytest.approx(share["evaluation_share"] + share["logging_share"]
                                                 + share["gradient_statistics_share"], abs=2e-4)


def test_compile_cost_times_cold_and_warm_first_steps_in_fresh_processes(capsys):
    script = load_script("compile_cost")
    assert script.main(["--only", "sgd_hd", "--params", "2000", "--steps", "2", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert set(row) == {"name", "eager_s", "cold_s", "warm_s", "cold_extra_s", "warm_extra_s"}
    assert row["name"] == "sgd_hd" and min(row["eager_s"], row["cold_s"], row["warm_s"]) > 0
    assert row["cold_extra_s"] == pytest.approx(row["cold_s"] - row["eager_s"], abs=2e-6)
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--steps", "1"])
    assert exit_info.value.code == 2 and "need --steps >= 2" in capsys.readouterr().err
