"""The terminal summary of a sweep, and which runs and metric a summary reports.

The report builds on the same choices (:func:`reported_runs`, :func:`primary_metrics`,
:func:`summary_rows`), so the terminal and the HTML never disagree about a number.

Example:
    >>> from rich.console import Console
    >>> summary_table(store.runs(), console=Console(), wall_seconds=252.0)  # doctest: +SKIP
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from gradretention.bench import stats

# Metrics in [0, 1] that read better as percentages.
_PERCENT_METRICS = ("accuracy", "f1", "exact_match", "miou")


def reported_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs whose test numbers are reported: the evaluation phases (``final`` reruns
    of the chosen lr and ``single`` runs), as in :mod:`gradretention.bench.stats`."""
    return runs[runs["phase"].isin(stats.EVALUATION_PHASES)]


def primary_metrics(runs: pd.DataFrame, metric: str | None = None) -> dict[str, str]:
    """The metric each task is judged on: ``test_accuracy`` when the task has it, else the
    first other ``test_*`` column with values, else ``test_loss``.

    Args:
        metric: force one metric for every task, with or without the ``test_`` prefix.

    Raises:
        ValueError: ``metric`` is not a column of ``runs``; the message lists the valid ones.
    """
    tasks = sorted(runs["task"].unique())
    candidates = sorted(c for c in runs.columns if c.startswith("test_"))
    if metric is not None:
        column = metric if metric in runs.columns else f"test_{metric}"
        if column not in runs.columns:
            raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(candidates) or 'none'}")
        return {task: column for task in tasks}
    # Accuracy first, losses last: a loss is only the judge when nothing else was measured.
    ranked = sorted(candidates, key=lambda c: (c != "test_accuracy", c == "test_loss", c))
    chosen = {}
    for task in tasks:
        values = runs.loc[runs["task"] == task, ranked].apply(pd.to_numeric, errors="coerce")
        present = [c for c in ranked if values[c].notna().any()]
        if present:
            chosen[task] = present[0]
    return chosen


def higher_is_better(metric: str) -> bool:
    """Losses and errors are minimised; every other metric is maximised."""
    return not any(word in metric for word in ("loss", "error", "perplexity"))


def format_value(metric: str, value: float, digits: int = 2) -> str:
    """``0.9433`` as ``94.33`` for percentage metrics, else four significant digits; ``—`` for NaN."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    if metric.endswith(_PERCENT_METRICS):
        return f"{100 * float(value):.{digits}f}"
    return f"{float(value):.4g}"


def metric_label(metric: str) -> str:
    """``test_accuracy`` -> ``test accuracy (%)``."""
    suffix = " (%)" if metric.endswith(_PERCENT_METRICS) else ""
    return metric.replace("_", " ") + suffix


def summary_rows(runs: pd.DataFrame, metrics: dict[str, str]) -> pd.DataFrame:
    """Per task × optimizer of the reported runs: the ``stats.summarize`` columns of that
    task's metric, plus ``metric``, ``best_lr``, ``median_steps_to_target`` and ``is_best``."""
    reported = reported_runs(runs)
    parts = []
    for metric in sorted(set(metrics.values())):
        tasks = [task for task, chosen in metrics.items() if chosen == metric]
        summary = stats.summarize(reported[reported["task"].isin(tasks)], metric)
        summary["metric"] = metric
        parts.append(summary)
    if not parts:
        return pd.DataFrame(columns=["task", "optimizer", "metric", "n", "n_diverged", "mean", "std",
                                     "ci_low", "ci_high", "best_lr", "median_steps_to_target", "is_best"])
    rows = pd.concat(parts, ignore_index=True)
    targets = stats.time_to_target(reported)[["task", "optimizer", "median_steps_to_target"]]
    best_lr = reported.groupby(["task", "optimizer"])["lr"].median().rename("best_lr").reset_index()
    rows = rows.merge(best_lr, on=["task", "optimizer"], how="left")
    rows = rows.merge(targets, on=["task", "optimizer"], how="left")
    rows["is_best"] = _best_flags(rows)
    return rows.sort_values(["task", "optimizer"], ignore_index=True)


def _best_flags(rows: pd.DataFrame) -> pd.Series:
    """True on the row(s) with the best mean of each task (ties all marked)."""
    signed = rows["mean"].astype(float) * np.where(rows["metric"].map(higher_is_better), 1.0, -1.0)
    best = signed.groupby(rows["task"]).transform("max")
    return signed.notna() & np.isclose(signed, best)


def summary_table(
    runs: pd.DataFrame,
    console: Console | None = None,
    wall_seconds: float | None = None,
    metric: str | None = None,
) -> Table:
    """A rich table per task × optimizer: test metric mean ± std (n), best lr, median
    steps to target and diverged runs; the best optimizer of each task in bold green.

    Args:
        runs: ``ResultsStore.runs()``.
        console: printed there when given.
        wall_seconds: the sweep's wall time, shown in the caption.
        metric: force one metric for every task (see :func:`primary_metrics`).
    """
    metrics = primary_metrics(runs, metric)
    table = Table(title="GradRetentionNet benchmark", header_style="bold", show_lines=False)
    for header, justify in (("task", "left"), ("optimizer", "left"), ("metric", "left"),
                            ("mean ± std (n)", "right"), ("best lr", "right"),
                            ("median steps to target", "right"), ("diverged", "right")):  # fmt: skip
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    previous_task = None
    for row in summary_rows(runs, metrics).itertuples():
        if previous_task is not None and row.task != previous_task:
            table.add_section()
        style = "bold green" if row.is_best else None
        cells = (
            row.task if row.task != previous_task else "",
            row.optimizer,
            metric_label(row.metric) if row.task != previous_task else "",
            f"{format_value(row.metric, row.mean)} ± {format_value(row.metric, row.std)} ({row.n})",
            f"{row.best_lr:.3g}" if pd.notna(row.best_lr) else "—",
            f"{row.median_steps_to_target:.0f}" if pd.notna(row.median_steps_to_target) else "—",
            str(int(row.n_diverged)) if row.n_diverged else "0",
        )
        table.add_row(*cells, style=style)
        previous_task = row.task
    table.caption = _caption(wall_seconds)
    if console is not None:
        console.print(table)
    return table


def format_duration(seconds: float) -> str:
    """``252.4`` -> ``4 min 12 s``; ``3.2`` -> ``3.2 s``; ``7300`` -> ``2 h 1 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _caption(wall_seconds: float | None) -> str:
    text = "best per task in bold; n = finished runs"
    if wall_seconds is not None:
        text += f"; total wall time {format_duration(wall_seconds)}"
    return text
