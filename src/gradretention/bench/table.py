"""The tables of a sweep: the rich terminal summary and the report's statistics tables.

Both build on the same choices (:func:`reported_runs`, :func:`primary_metrics`,
:func:`summary_rows`), so the terminal and the report never disagree about a number.
The report's tables are :class:`TextTable` objects of formatted cells, which
:mod:`gradretention.bench.report` renders as Markdown and HTML.

Example:
    >>> from rich.console import Console
    >>> summary_table(store.runs(), console=Console(), wall_seconds=252.0)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gradretention.bench import stats

# Metrics in [0, 1] that read better as percentages.
_PERCENT_METRICS = ("accuracy", "f1", "exact_match", "miou")


def reported_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs whose test numbers are reported: the evaluation phases (``final`` reruns
    of the chosen lr and ``single`` runs), as in :mod:`gradretention.bench.stats`."""
    return runs[runs["phase"].isin(stats.EVALUATION_PHASES)]


def primary_metrics(runs: pd.DataFrame, metric: str | None = None) -> dict[str, str]:
    """The metric each task is judged on: ``test_<its target metric>`` (the metric the
    sweep tuned on), else ``test_accuracy``, else the first other ``test_*`` column with
    values, else ``test_loss``. Tasks are left out only when there is no ``test_*`` column.

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
    chosen = {}
    for task in tasks:
        # Target first, then accuracy, losses last: a loss is the judge only when nothing else was measured.
        target = f"test_{_target_metric(task)}"
        ranked = sorted(candidates, key=lambda c: (c != target, c != "test_accuracy", c == "test_loss", c))
        values = runs.loc[runs["task"] == task, ranked].apply(pd.to_numeric, errors="coerce")
        present = [c for c in ranked if values[c].notna().any()]
        if present or ranked:  # a task whose every run failed is still judged on its target
            chosen[task] = (present or ranked)[0]
    return chosen


def _target_metric(task: str) -> str:
    """The registered task's target metric; ``accuracy`` for a task this install lacks."""
    from gradretention.tasks.registry import TASKS  # imported late: it loads torch

    registered = TASKS.get(task)
    return registered.target_metric if registered is not None else "accuracy"


def higher_is_better(metric: str) -> bool:
    """Losses and errors are minimised; every other metric is maximised."""
    return not any(word in metric for word in ("loss", "error", "perplexity"))


def is_percent(metric: str) -> bool:
    """Metrics in [0, 1] that are shown as percentages (accuracy, F1, exact match, mIoU)."""
    return metric.endswith(_PERCENT_METRICS)


def format_value(metric: str, value: float, digits: int = 2) -> str:
    """``0.9433`` as ``94.33`` for percentage metrics, else four significant digits; ``—`` for NaN."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    if is_percent(metric):
        return f"{100 * float(value):.{digits}f}"
    return f"{float(value):.4g}"


def metric_label(metric: str) -> str:
    """``test_accuracy`` -> ``test accuracy (%)``."""
    suffix = " (%)" if is_percent(metric) else ""
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
    rows = summary_rows(runs, metrics)
    # One metric for every task goes in the title: an 80-column terminal has no room to spare.
    single = metric_label(rows["metric"].iloc[0]) if rows["metric"].nunique() == 1 else None
    title = "GradRetentionNet benchmark" + (f": {single}" if single else "")
    table = Table(title=title, header_style="bold")
    table.add_column("task", no_wrap=True)
    table.add_column("optimizer", no_wrap=True, min_width=12)
    if single is None:
        table.add_column("metric")
    table.add_column("mean ± std (n)", justify="right", no_wrap=True)
    for header in ("best lr", "steps to target", "diverged"):
        table.add_column(header, justify="right")
    previous_task = None
    for row in rows.itertuples():
        if previous_task is not None and row.task != previous_task:
            table.add_section()
        table.add_row(*_terminal_cells(row, row.task != previous_task, single is None),
                      style="bold green" if row.is_best else None)  # fmt: skip
        previous_task = row.task
    table.caption = _caption(wall_seconds)
    if console is not None:
        console.print(table)
    return table


def _terminal_cells(row: tuple, first_of_task: bool, with_metric: bool) -> list[str | Text]:
    # Text, not str: a spec such as "adam_hd[hypergrad_lr=1e-07]" is not rich markup.
    cells: list[str | Text] = [Text(row.task if first_of_task else ""), Text(row.optimizer)]
    if with_metric:
        cells.append(metric_label(row.metric) if first_of_task else "")
    return cells + [
        f"{_mean_std(row.metric, row.mean, row.std)} ({row.n})",
        f"{row.best_lr:.3g}" if pd.notna(row.best_lr) else "—",
        f"{row.median_steps_to_target:.0f}" if pd.notna(row.median_steps_to_target) else "—",
        str(int(row.n_diverged)),
    ]


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
    text = "bold: best per task; n: finished runs; steps: median"
    if wall_seconds is not None:
        text += f"; total wall time {format_duration(wall_seconds)}"
    return text


@dataclass(frozen=True)
class TextTable:
    """Formatted cells that the report renders as Markdown and as HTML.

    ``bold`` holds ``(row, column)`` positions; ``numeric`` the columns aligned right.
    """

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    bold: frozenset[tuple[int, int]] = frozenset()
    numeric: frozenset[int] = frozenset()
    caption: str = ""


def results_table(runs: pd.DataFrame, metrics: dict[str, str]) -> TextTable:
    """Mean ± std, 95 % bootstrap CI and n of each task's metric (and test F1 when it was
    measured) per task × optimizer; the best of each task in bold."""
    rows = summary_rows(runs, metrics)
    if "test_f1" in runs.columns and "test_f1" not in metrics.values():
        f1 = stats.summarize(reported_runs(runs), "test_f1")[["task", "optimizer", "mean", "std"]]
        rows = rows.merge(f1.rename(columns={"mean": "f1_mean", "std": "f1_std"}), how="left")
        best_f1 = rows.groupby("task")["f1_mean"].transform("max")
        rows["f1_best"] = rows["f1_mean"].notna() & (rows["f1_mean"] == best_f1)
    # (header, cell, column of the bold flag); one metric for all tasks goes in the header.
    single = rows["metric"].iloc[0] if rows["metric"].nunique() == 1 else None
    columns = [("task", lambda r: r.task, None), ("optimizer", lambda r: r.optimizer, "is_best")]
    if single is None:
        columns.append(("metric", lambda r: metric_label(r.metric), None))
    columns += [(f"{metric_label(single)} mean ± std" if single else "mean ± std",
                 lambda r: _mean_std(r.metric, r.mean, r.std), "is_best"),
                ("95 % CI", lambda r: _interval(r.metric, r.ci_low, r.ci_high), None)]
    if "f1_mean" in rows.columns:
        columns.append(("test F1 (%) mean ± std", lambda r: _mean_std("test_f1", r.f1_mean, r.f1_std), "f1_best"))
    columns += [("n", lambda r: str(r.n), None), ("diverged", lambda r: str(int(r.n_diverged)), None)]
    records = list(rows.itertuples())
    cells = tuple(tuple(cell(r) for _, cell, _ in columns) for r in records)
    flags = [(j, flag) for j, (_, _, flag) in enumerate(columns) if flag]
    bold = {(i, j) for i, r in enumerate(records) for j, flag in flags if getattr(r, flag)}
    caption = "Reported runs (final reruns at the chosen lr); n counts finished runs, diverged runs are not averaged."
    numeric = frozenset(range(len(columns) - 4 - ("f1_mean" in rows.columns), len(columns)))
    return TextTable(tuple(h for h, _, _ in columns), cells, frozenset(bold), numeric, caption)


def significance_table(runs: pd.DataFrame, metrics: dict[str, str]) -> TextTable | None:
    """Each optimizer vs its task's best baseline: Welch and Mann–Whitney p (Holm), Cohen's d."""
    parts = []
    for metric in sorted(set(metrics.values())):
        tasks = [task for task, chosen in metrics.items() if chosen == metric]
        subset = reported_runs(runs)[lambda frame: frame["task"].isin(tasks)]
        compared = stats.compare_to_best_baseline(subset, metric, higher_is_better(metric))
        parts.append(compared.assign(metric=metric))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if frame.empty:
        return None
    cells, bold = [], set()
    for index, row in enumerate(frame.sort_values(["task", "optimizer"]).itertuples()):
        scale = 100 if is_percent(row.metric) else 1
        cells.append((row.task, row.optimizer, row.baseline, f"{row.n} vs {row.n_baseline}",
                      format_value(row.metric, row.mean), format_value(row.metric, row.baseline_mean),
                      f"{scale * row.diff:+.2f}" if pd.notna(row.diff) else "—",
                      _p_value(row.welch_p_holm), _p_value(row.mwu_p_holm),
                      f"{row.cohens_d:+.2f}" if pd.notna(row.cohens_d) else "—",
                      _verdict(row.significant, row.diff, row.metric)))  # fmt: skip
        if row.significant:
            bold.update({(index, 6), (index, 10)})
    headers = ("task", "optimizer", "best baseline", "n", "mean", "baseline mean", "diff",
               "Welch p (Holm)", "Mann–Whitney p (Holm)", "Cohen's d", "significant")  # fmt: skip
    caption = ("Two-sided tests against the best baseline of each task; p-values Holm-corrected "
               "within a task; significant means Welch p (Holm) < 0.05; diff in points for percentages.")
    return TextTable(headers, tuple(cells), frozenset(bold), frozenset(range(3, 10)), caption)


def time_to_target_table(runs: pd.DataFrame) -> TextTable | None:
    """Share of runs that reached the task's validation target, median steps and seconds."""
    frame = stats.time_to_target(reported_runs(runs))
    if frame.empty or frame["reached"].fillna(0).eq(0).all():
        return None
    cells = tuple(
        (row.task, row.optimizer, f"{100 * row.reached:.0f} % of {row.n}",
         f"{row.median_steps_to_target:.0f}" if pd.notna(row.median_steps_to_target) else "—",
         f"{row.median_seconds_to_target:.2f}" if pd.notna(row.median_seconds_to_target) else "—")
        for row in frame.itertuples()
    )  # fmt: skip
    headers = ("task", "optimizer", "reached target", "median steps", "median seconds")
    caption = "Medians over the runs that reached the target."
    return TextTable(headers, cells, numeric=frozenset({2, 3, 4}), caption=caption)


def sensitivity_table(runs: pd.DataFrame, metrics: dict[str, str]) -> TextTable | None:
    """Per task × optimizer: the best tuning lr, its validation score, and the share of the
    grid within one point (0.01) of it with no diverged seed."""
    parts = []
    for metric in sorted(set(metrics.values())):
        score = validation_metric(runs, metric)
        tasks = [task for task, chosen in metrics.items() if chosen == metric]
        subset = runs[runs["task"].isin(tasks)]
        share = stats.lr_sensitivity_share(subset, score, 0.01, higher_is_better(score))
        parts.append(share.assign(metric=score))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if frame.empty:
        return None
    cells = tuple(
        (row.task, row.optimizer, f"{row.best_lr:.3g}", format_value(row.metric, row.best), str(row.n_lrs),
         f"{100 * row.share_within:.0f} %")
        for row in frame.sort_values(["task", "optimizer"]).itertuples()
    )  # fmt: skip
    headers = ("task", "optimizer", "best lr", "best validation score", "grid size", "grid within 0.01 of best")
    caption = "Tuning runs; a wide share means the optimizer forgives a poorly chosen lr."
    return TextTable(headers, cells, numeric=frozenset({2, 3, 4, 5}), caption=caption)


def problem_runs_table(runs: pd.DataFrame) -> TextTable | None:
    """Every run that did not finish cleanly, with its status and reason."""
    bad = runs[runs["status"] != "done"].sort_values(["status", "task", "optimizer", "phase", "lr", "seed"])
    if bad.empty:
        return None
    cells = tuple(
        (row.status, row.task, row.optimizer, row.phase, f"{row.lr:.3g}" if pd.notna(row.lr) else "—",
         str(row.seed), _short(str(row.reason or "—")))
        for row in bad.itertuples()
    )  # fmt: skip
    headers = ("status", "task", "optimizer", "phase", "lr", "seed", "reason")
    return TextTable(headers, cells, numeric=frozenset({4, 5}))


def validation_metric(runs: pd.DataFrame, metric: str) -> str:
    """``test_accuracy`` -> ``val_accuracy`` (what tuning ranks by) when that column exists."""
    candidate = "val_" + metric.removeprefix("test_")
    return candidate if candidate in runs.columns else metric


def _mean_std(metric: str, mean: float, std: float) -> str:
    """``mean ± std``; the mean alone for one value, ``—`` for none."""
    if pd.isna(mean) or pd.isna(std):
        return format_value(metric, mean)
    return f"{format_value(metric, mean)} ± {format_value(metric, std)}"


def _interval(metric: str, low: float, high: float) -> str:
    if pd.isna(low) or pd.isna(high):
        return "—"
    return f"{format_value(metric, low)} – {format_value(metric, high)}"


def _verdict(significant: bool, diff: float, metric: str) -> str:
    if not significant:
        return "no"
    return "better" if (diff > 0) == higher_is_better(metric) else "worse"


def _short(text: str, limit: int = 300) -> str:
    # One line per run: a traceback's last words are in the store for whoever needs them.
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _p_value(p: float) -> str:
    if p is None or not math.isfinite(float(p)):
        return "—"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"
