"""The terminal summary table and the choice of metric it reports."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from rich.console import Console

from gradretention.bench import table
from gradretention.bench.analysis import facts
from gradretention.bench.reporting import cells

BASE = (0.90, 0.91, 0.92, 0.93, 0.94)
# A test set of 100 000 examples: SE_test is tiny, so the CI alone decides.
BIG_TEST = json.dumps({"eval_samples_per_second": 100_000.0, "eval_runtime": 1.0})


def _run(optimizer: str, seed: int, accuracy: float, *, status: str = "done", phase: str = "final",
         lr: float = 0.01, steps_to_target: float = math.nan, task: str = "spiral") -> dict:
    return dict(run_id=f"{task}-{optimizer}-{phase}-{seed}-{lr}", task=task, optimizer=optimizer,
                optimizer_name=optimizer.split("[")[0], lr=lr, seed=seed, data_seed=0, phase=phase,
                status=status, reason="", steps=200, steps_to_target=steps_to_target, eval_json=BIG_TEST,
                seconds_to_target=steps_to_target / 100, test_accuracy=accuracy, val_accuracy=accuracy,
                test_f1=accuracy - 0.05, config_json="{}")  # fmt: skip


def _runs() -> pd.DataFrame:
    rows = [_run("adam", s, v, steps_to_target=100 + 10 * s) for s, v in enumerate(BASE)]
    rows += [_run("adam_hd", s, v + 0.05 + 0.001 * s, lr=0.001, steps_to_target=80 if s < 2 else math.nan)
             for s, v in enumerate(BASE)]  # fmt: skip
    rows += [_run("momentum", s, v + d) for s, (v, d) in enumerate(zip(BASE, (0.001, -0.001, 0.002, 0, -0.002)))]
    rows += [_run("sgd", s, v - 0.5 - 0.001 * s) for s, v in enumerate(BASE) if s != 2]
    rows += [_run("sgd", 2, math.nan, status="diverged"), _run("sgd", 0, 0.99, phase="tune", lr=0.1)]
    return pd.DataFrame(rows)


def _rendered(runs: pd.DataFrame, width: int = 120, **kwargs) -> tuple[table.Table, str]:
    console = Console(record=True, width=width, color_system=None)
    result = table.summary_table(runs, console=console, **kwargs)
    return result, console.export_text()


def _line(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f" {name} "))


def test_table_shows_mean_sd_success_rate_lr_verdict_steps_and_wall_time() -> None:
    result, text = _rendered(_runs(), wall_seconds=252.0)
    assert "92.00 ± 1.58" in _line(text, "adam") and "5/5" in _line(text, "adam")
    assert "reference" in _line(text, "adam") and "120 (5/5)" in _line(text, "adam")
    hd = _line(text, "adam_hd")
    assert "+5.20" in hd and "better" in hd and "0.001" in hd and "80 (2/5)" in hd
    assert "4/5" in _line(text, "sgd") and "worse" in _line(text, "sgd")
    assert "tie" in _line(text, "momentum")
    assert "total wall time 4 min 12 s" in " ".join(text.split()) and result.caption.endswith("4 min 12 s")


def test_a_diverged_seed_counts_at_chance_in_the_mean() -> None:
    # sgd: four finished seeds and one diverged at 0.0 (F1-free score, no classes known for a fake task).
    _, text = _rendered(_runs().assign(task="fake-task", run_id=lambda f: f["run_id"] + "x"))
    finished = [v - 0.5 - 0.001 * s for s, v in enumerate(BASE) if s != 2]
    assert f"{100 * sum(finished) / 5:.2f} ±" in _line(text, "sgd")


def test_only_significant_verdicts_are_coloured() -> None:
    result, _ = _rendered(_runs())
    labels = result.columns[0]._cells
    styles = {str(cell): cell.style for cell in labels if hasattr(cell, "style")}
    assert styles["adam_hd"] == "bold green" and styles["sgd"] == "bold red"
    assert styles["momentum"] == "" and styles["adam"] == ""


def test_spec_names_with_brackets_are_shown_verbatim_not_as_markup() -> None:
    runs = _runs().replace({"optimizer": {"adam_hd": "adam_hd[hypergrad_lr=1e-07]"}})
    _, text = _rendered(runs)
    assert "adam_hd[hypergrad_lr=1e-07]" in text


def test_the_table_keeps_every_column_at_80_columns() -> None:
    _, text = _rendered(_runs(), width=80)
    header = next(line for line in text.splitlines() if "optimizer" in line)
    assert all(name in header for name in ("mean ± sd", "done", "lr", "Δ vs ref", "verdict", "steps"))
    assert max(len(line) for line in text.splitlines()) <= 80


def test_primary_metric_prefers_accuracy_then_any_other_test_metric() -> None:
    runs = pd.concat([_runs(), pd.DataFrame([
        dict(run_id="q", task="squad", optimizer="adam", phase="final", status="done",
             test_exact_match=0.4, test_loss=1.2)])])  # fmt: skip
    assert facts.primary_metrics(runs) == {"spiral": "test_accuracy", "squad": "test_exact_match"}
    assert facts.primary_metrics(runs, "f1") == {"spiral": "test_f1", "squad": "test_f1"}


def test_primary_metric_is_the_registered_tasks_target_when_measured(monkeypatch) -> None:
    from gradretention.tasks import registry
    from gradretention.tasks.base import Task

    segmentation = Task(name="voc-seg-test", description="", load=lambda *_: None, build_model=lambda *_: None,
                        target_metric="miou", metrics=("accuracy", "miou"))  # fmt: skip
    monkeypatch.setitem(registry.TASKS, "voc-seg-test", segmentation)
    runs = pd.DataFrame([dict(run_id="s", task="voc-seg-test", optimizer="adam", phase="final", status="done",
                              test_accuracy=0.9, test_miou=0.6)])  # fmt: skip
    assert facts.primary_metrics(runs) == {"voc-seg-test": "test_miou"}


def test_unknown_metric_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown metric 'bleu'.*test_accuracy, test_f1"):
        facts.primary_metrics(_runs(), "bleu")


def test_loss_metrics_are_minimised_and_formatted_plainly() -> None:
    assert not facts.higher_is_better("test_loss") and facts.higher_is_better("test_accuracy")
    assert cells.format_value("test_loss", 0.123456) == "0.1235"
    assert cells.format_value("test_accuracy", 0.5) == "50.00"
    assert cells.format_value("test_accuracy", math.nan) == "—"
    assert cells.format_diff("test_loss", -0.0001234) == "-0.000123"  # never "-0.00"
    assert cells.duration(7300) == "2 h 1 min"
    assert cells.interval("test_accuracy", 0.01, 0.01, spread=0.0) == "none: Δ equal on every seed"
