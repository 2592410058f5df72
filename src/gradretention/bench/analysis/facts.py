"""What the statistics need to know about a task and its metric.

* the metric a task is judged on (:func:`primary_metrics`) and its validation twin;
* the direction of a metric and whether it is a binomial proportion (an accuracy);
* ``n_test``, the test-set size, for the test-set sampling error of an accuracy;
* the chance level at which a failed (diverged, errored) seed is counted.

The test-set size is read from the run records: a recorded ``n_test`` column where the
store has one, else the test evaluation's ``eval_samples_per_second × eval_runtime``
(``eval_json``), which is ``len(test split)`` up to rounding.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np
import pandas as pd

# Metrics in [0, 1] that read better as percentages.
_PERCENT_METRICS = ("accuracy", "f1", "exact_match", "miou")


def higher_is_better(metric: str) -> bool:
    """Losses and errors are minimised; every other metric is maximised."""
    return not any(word in metric for word in ("loss", "error", "perplexity"))


def is_percent(metric: str) -> bool:
    """Metrics in [0, 1] shown as percentages (accuracy, F1, exact match, mIoU)."""
    return metric.endswith(_PERCENT_METRICS)


def is_accuracy(metric: str) -> bool:
    """A binomial proportion over test examples: the only metric with an SE_test term."""
    return metric.endswith("accuracy")


def validation_metric(runs: pd.DataFrame, metric: str) -> str:
    """``test_accuracy`` -> ``val_accuracy`` (what tuning ranks by) when that column exists."""
    candidate = "val_" + metric.removeprefix("test_")
    return candidate if candidate in runs.columns else metric


def primary_metrics(runs: pd.DataFrame, metric: str | None = None) -> dict[str, str]:
    """The metric each task is judged on: ``test_<its target metric>``, else ``test_accuracy``,
    else the first other ``test_*`` column with values, else ``test_loss``.

    Args:
        metric: force one metric for every task, with or without the ``test_`` prefix.

    Raises:
        ValueError: ``metric`` is not a column of ``runs``; the message lists the valid ones.
    """
    tasks = sorted(runs["task"].unique())
    candidates = sorted(c for c in runs.columns if str(c).startswith("test_"))
    if metric is not None:
        column = metric if metric in runs.columns else f"test_{metric}"
        if column not in runs.columns:
            raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(candidates) or 'none'}")
        return {task: column for task in tasks}
    chosen = {}
    for task in tasks:
        target = f"test_{target_of(task)[0]}"
        ranked = sorted(candidates, key=lambda c: (c != target, c != "test_accuracy", c == "test_loss", c))
        values = runs.loc[runs["task"] == task, ranked].apply(pd.to_numeric, errors="coerce")
        present = [c for c in ranked if values[c].notna().any()]
        if present or ranked:  # a task whose every run failed is still judged on its target
            chosen[task] = (present or ranked)[0]
    return chosen


@functools.cache
def target_of(task: str) -> tuple[str, float | None]:
    """The registered task's validation target ``(metric, value)``; ``("accuracy", None)`` if unknown."""
    from gradretention.tasks.registry import TASKS  # imported late: it loads torch

    registered = TASKS.get(task)
    return (registered.target_metric, registered.target_value) if registered else ("accuracy", None)


def test_set_size(runs: pd.DataFrame) -> int | None:
    """The test-set size of a group's finished runs; ``None`` when nothing records it."""
    done = runs[runs["status"] == "done"]
    if "n_test" in done.columns and done["n_test"].notna().any():
        return int(pd.to_numeric(done["n_test"], errors="coerce").median())
    sizes = [size for size in map(_size_from_eval, done.get("eval_json", pd.Series(dtype=str))) if size]
    return int(np.median(sizes)) if sizes else None


def _size_from_eval(text: object) -> int | None:
    try:
        record = json.loads(str(text))
        size = float(record["eval_samples_per_second"]) * float(record["eval_runtime"])
    except (ValueError, TypeError, KeyError):
        return None
    return round(size) if math.isfinite(size) and size >= 1 else None


def chance_level(task: str, metric: str, runs: pd.DataFrame) -> tuple[float, str]:
    """The value a failed seed counts as, and how it was found (for the report).

    The ``chance`` each run records (its task's target metric) where the store has it;
    otherwise accuracy: 1 / number of classes (a ``num_classes`` column, else the registered task's
    data). A cross-entropy loss: ln(classes). Other scores in [0, 1]: 0. Otherwise the
    worst finished value of the group, which never flatters a failure.
    """
    base = metric.removeprefix("test_").removeprefix("val_")
    recorded = pd.to_numeric(runs.get("chance", pd.Series(dtype=float)), errors="coerce").dropna()
    if len(recorded) and base == target_of(task)[0]:  # each run records its target metric's chance level
        return float(recorded.median()), "the task's chance level, as recorded with the runs"
    classes = _classes(task, runs) if base in ("accuracy", "loss") else None
    registered = _registered(task)
    if classes and registered is not None and registered.target_metric == base:
        return registered.chance_level(classes), f"the task's chance level ({classes} classes)"
    if classes:
        if base == "accuracy":
            return 1.0 / classes, f"chance, 1/{classes} classes"
        return math.log(classes), f"ln {classes} classes (a uniform prediction)"
    if is_percent(metric):
        return 0.0, "0, the worst score"
    values = pd.to_numeric(runs.get(metric, pd.Series(dtype=float)), errors="coerce").dropna()
    if values.empty:
        return math.nan, "unknown"
    worst = values.min() if higher_is_better(metric) else values.max()
    return float(worst), "the worst finished seed"


def _classes(task: str, runs: pd.DataFrame) -> int | None:
    if "num_classes" in runs.columns and runs["num_classes"].notna().any():
        return int(pd.to_numeric(runs["num_classes"], errors="coerce").max())
    data_seed = int(runs["data_seed"].iloc[0]) if "data_seed" in runs.columns and len(runs) else 0
    return _registered_classes(task, data_seed)


def _registered(task: str) -> Any:
    from gradretention.tasks.registry import TASKS  # imported late: it loads torch

    return TASKS.get(task)


@functools.cache
def _registered_classes(task: str, data_seed: int) -> int | None:
    # Loaded only when a seed failed; an embedded task loads in well under a second.
    registered = _registered(task)
    if registered is None or registered.needs_download:
        return None
    try:
        return int(registered.load(data_seed, None).num_classes)
    except Exception:  # noqa: BLE001 - any failure just means "unknown": the fallback is stated
        return None
