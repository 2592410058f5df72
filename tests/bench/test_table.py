"""The terminal summary table and the choice of runs and metric it reports."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from rich.console import Console

from gradretention.bench import table


def _run(optimizer: str, seed: int, accuracy: float, *, status: str = "done", phase: str = "final",
         lr: float = 0.01, steps_to_target: float = math.nan, task: str = "spiral") -> dict:
    return dict(run_id=f"{task}-{optimizer}-{phase}-{seed}-{lr}", task=task, optimizer=optimizer,
                optimizer_name=optimizer.split("[")[0], lr=lr, seed=seed, data_seed=0, phase=phase,
                status=status, reason="", steps=200, steps_to_target=steps_to_target,
                seconds_to_target=steps_to_target / 100, test_accuracy=accuracy, test_f1=accuracy - 0.05)


def _runs() -> pd.DataFrame:
    return pd.DataFrame([
        _run("adam", 0, 0.90, steps_to_target=100), _run("adam", 1, 0.92, steps_to_target=120),
        _run("adam", 2, 0.94, steps_to_target=140),
        _run("adam_hd", 0, 0.93, lr=0.001, steps_to_target=80), _run("adam_hd", 1, 0.95, lr=0.001, steps_to_target=90),
        _run("adam_hd", 2, 0.97, lr=0.001),
        _run("sgd", 0, 0.80), _run("sgd", 1, 0.84), _run("sgd", 2, math.nan, status="diverged"),
        # A tuning run at another lr with a better score must not leak into the summary.
        _run("sgd", 0, 0.99, phase="tune", lr=0.1),
    ])  # fmt: skip


def _rendered(runs: pd.DataFrame, **kwargs) -> tuple[table.Table, str]:
    console = Console(record=True, width=160, color_system=None)
    result = table.summary_table(runs, console=console, **kwargs)
    return result, console.export_text()


def test_table_shows_mean_std_n_best_lr_target_steps_and_wall_time() -> None:
    result, text = _rendered(_runs(), wall_seconds=252.0)
    lines = {name: next(line for line in text.splitlines() if f" {name} " in line) for name in ("adam", "adam_hd", "sgd")}
    assert "92.00 ± 2.00 (3)" in lines["adam"] and "120" in lines["adam"] and "0.01" in lines["adam"]
    assert "95.00 ± 2.00 (3)" in lines["adam_hd"] and "85" in lines["adam_hd"] and "0.001" in lines["adam_hd"]
    assert "82.00 ± 2.83 (2)" in lines["sgd"] and lines["sgd"].rstrip(" │").endswith(" 1")
    assert "total wall time 4 min 12 s" in text
    assert result.caption.endswith("4 min 12 s")


def test_best_optimizer_of_each_task_is_highlighted() -> None:
    runs = pd.concat([_runs(), pd.DataFrame([_run("sgd", 0, 0.7, task="digits-mlp"),
                                             _run("adam", 0, 0.6, task="digits-mlp")])])
    result, _ = _rendered(runs)
    optimizers = result.columns[1]._cells
    bold = [str(optimizers[i]) for i, row in enumerate(result.rows) if row.style == "bold green"]
    assert bold == ["sgd", "adam_hd"]  # digits-mlp sorts first


def test_spec_names_with_brackets_are_shown_verbatim_not_as_markup() -> None:
    runs = _runs().replace({"optimizer": {"adam_hd": "adam_hd[hypergrad_lr=1e-07]"}})
    _, text = _rendered(runs)
    assert "adam_hd[hypergrad_lr=1e-07]" in text


def test_wall_time_is_optional() -> None:
    _, text = _rendered(_runs())
    assert "wall time" not in text


def test_primary_metric_prefers_accuracy_then_any_other_test_metric() -> None:
    runs = pd.concat([_runs(), pd.DataFrame([
        dict(run_id="q", task="squad", optimizer="adam", phase="final", status="done",
             test_exact_match=0.4, test_loss=1.2)])])  # fmt: skip
    assert table.primary_metrics(runs) == {"spiral": "test_accuracy", "squad": "test_exact_match"}
    assert table.primary_metrics(runs, "f1") == {"spiral": "test_f1", "squad": "test_f1"}


def test_primary_metric_is_the_registered_tasks_target_when_measured(monkeypatch) -> None:
    from gradretention.tasks import registry
    from gradretention.tasks.base import Task

    segmentation = Task(name="voc-seg", description="", load=lambda *_: None, build_model=lambda *_: None,
                        target_metric="miou", metrics=("accuracy", "miou"))  # fmt: skip
    monkeypatch.setitem(registry.TASKS, "voc-seg", segmentation)
    runs = pd.DataFrame([dict(run_id="s", task="voc-seg", optimizer="adam", phase="final", status="done",
                              test_accuracy=0.9, test_miou=0.6)])  # fmt: skip
    assert table.primary_metrics(runs) == {"voc-seg": "test_miou"}


def test_unknown_metric_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown metric 'bleu'.*test_accuracy, test_f1"):
        table.primary_metrics(_runs(), "bleu")


def test_loss_metrics_are_minimised_and_formatted_plainly() -> None:
    assert not table.higher_is_better("test_loss")
    assert table.higher_is_better("test_accuracy")
    assert table.format_value("test_loss", 0.123456) == "0.1235"
    assert table.format_value("test_accuracy", 0.5) == "50.00"
    assert table.format_value("test_accuracy", math.nan) == "—"
    assert table.format_duration(7300) == "2 h 1 min"
