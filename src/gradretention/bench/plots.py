"""Figures of a benchmark: learning curves, lr trajectories, box plots, sensitivity, profiles.

Every function takes the tidy frames of the results store (``runs`` and ``curves``) and
returns a :class:`matplotlib.figure.Figure`, or ``None`` when there is nothing to draw.
Figures are built with the object API on the Agg canvas and are never registered with
pyplot, so nothing global leaks, nothing opens a window, and a GUI can embed them as they
are. One optimizer keeps one colour in every figure when the callers pass the palette of
:func:`optimizer_colors` built once over all runs.

Example:
    >>> colors = optimizer_colors(runs["optimizer"])
    >>> fig = learning_curves(runs, curves, "spiral", colors=colors)
    >>> if fig is not None:
    ...     save_figure(fig, out / "figures" / "curves-spiral.png")
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless by construction: no display, no window

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

Color = tuple[float, float, float, float]

# tab10 first (the familiar order), then ten colours from Kelly's maximum-contrast set that
# no tab10 hue resembles; tab20's light/dark pairs would read as one colour in a legend.
_EXTRA_COLORS = ("#222222", "#f3c300", "#a1caf1", "#c2b280", "#882d17",
                 "#8db600", "#b3446c", "#604e97", "#f99379", "#2b3d26")  # fmt: skip
# Runs that blew up carry no usable curve; they are listed in the report instead.
_PLOTTED_STATUSES = ("done", "interrupted")
_SMALL = (6.4, 3.6)
# ``vert=False`` is deprecated from matplotlib 3.10, ``orientation`` does not exist before it.
_MPL_VERSION = tuple(int(part) for part in matplotlib.__version__.split(".")[:2])
_HORIZONTAL = {"orientation": "horizontal"} if _MPL_VERSION >= (3, 10) else {"vert": False}


def optimizer_colors(optimizers: Iterable[str]) -> dict[str, Color]:
    """One colour per distinct optimizer spec, assigned in sorted order.

    Args:
        optimizers: spec strings, duplicates allowed (e.g. ``runs["optimizer"]``).

    Returns:
        ``{spec: RGBA}``; the same set of specs always gets the same colours.
    """
    colors: list[Color] = [to_rgba(c) for c in colormaps["tab10"].colors]  # type: ignore[attr-defined]
    colors += [to_rgba(c) for c in _EXTRA_COLORS]
    names = sorted({str(name) for name in optimizers})
    return {name: colors[index % len(colors)] for index, name in enumerate(names)}


def save_figure(fig: Figure, path: Path | str, dpi: int = 100) -> Path:
    """Write ``fig`` as PNG atomically (temp file + ``os.replace``) and release it.

    A reader (browser, report builder) never sees a half-written image.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would make the image unreadable when served or shared.
    temp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "xb") as stream:
            # Constrained layout already fits the labels and outside legend: no second "tight" pass.
            fig.savefig(stream, format="png", dpi=dpi)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        fig.clear()
    return path


def learning_curves(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    task: str,
    metric: str = "accuracy",
    colors: Mapping[str, Color] | None = None,
) -> Figure | None:
    """Train loss vs step and validation ``metric`` vs epoch: mean ± std over seeds.

    Only the reported runs are drawn (final or single, not the tuning runs at other lrs).
    Diverged and failed runs are left out: their values would flatten every other curve.

    Returns:
        A two-panel figure, or ``None`` when the task has no logged curve.
    """
    points = _task_curves(runs, curves, task, _PLOTTED_STATUSES)
    train = points[(points["split"] == "train") & (points["name"] == "loss")]
    val = points[(points["split"] == "val") & (points["name"] == metric)]
    if train.empty and val.empty:
        return None
    colors = colors or optimizer_colors(points["optimizer"])
    fig = Figure(figsize=(_SMALL[0] * 1.6, _SMALL[1]), layout="constrained")
    loss_ax, metric_ax = fig.subplots(1, 2)
    _band_lines(loss_ax, train, "step", colors)
    _band_lines(metric_ax, val, "epoch", colors)
    if _spans_decades(train["value"].to_numpy(float)):
        loss_ax.set_yscale("log")
    loss_ax.set(xlabel="step", ylabel="train loss", title=f"{task}: train loss")
    metric_ax.set(xlabel="epoch", ylabel=f"validation {metric}", title=f"{task}: validation {metric}")
    _legend(fig, metric_ax if val.size else loss_ax)
    return fig


def lr_trajectories(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    task: str,
    colors: Mapping[str, Color] | None = None,
) -> Figure | None:
    """Learning rate of param group 0 vs step, mean over seeds.

    The axis is symlog once an lr reaches zero or below (a hypergradient lr may cross
    zero), its linear region sized from the data so that tiny and large lrs stay readable;
    log for positive lrs spanning a decade or more; linear otherwise. Every status is
    drawn: an lr that ran away is often why a run diverged.
    """
    points = _task_curves(runs, curves, task, None)
    lrs = points[(points["split"] == "opt") & (points["name"] == "lr")]
    lrs = lrs[lrs["group"].fillna(0).astype(int) == 0]
    if lrs.empty:
        return None
    colors = colors or optimizer_colors(lrs["optimizer"])
    fig = Figure(figsize=_SMALL, layout="constrained")
    ax = fig.subplots()
    _band_lines(ax, lrs, "step", colors)
    values = lrs["value"].to_numpy(float)
    if (values <= 0).any():
        ax.set_yscale("symlog", linthresh=_linthresh(values))
        ax.axhline(0.0, color="0.6", linewidth=0.8)
    elif _spans_decades(values):
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="lr (group 0)", title=f"{task}: learning rate")
    _legend(fig, ax)
    return fig


def metric_boxplot(
    runs: pd.DataFrame,
    task: str,
    metric: str,
    colors: Mapping[str, Color] | None = None,
) -> Figure | None:
    """Final ``metric`` per optimizer over seeds: a horizontal box plus every seed as a dot."""
    if metric not in runs.columns:
        return None
    rows = _reported(runs[runs["task"] == task])
    rows = rows[rows["status"].isin(_PLOTTED_STATUSES)]
    rows = rows[np.isfinite(pd.to_numeric(rows[metric], errors="coerce"))]
    if rows.empty:
        return None
    colors = colors or optimizer_colors(rows["optimizer"])
    names = sorted(rows["optimizer"].unique())
    values = [rows.loc[rows["optimizer"] == name, metric].astype(float).to_numpy() for name in names]
    fig = Figure(figsize=(_SMALL[0], 0.9 + 0.38 * len(names)), layout="constrained")
    ax = fig.subplots()
    boxes = ax.boxplot(values, patch_artist=True, widths=0.6, showfliers=False,
                       medianprops={"color": "0.15"}, **_HORIZONTAL)
    for box, name in zip(boxes["boxes"], names):
        box.set(facecolor=(*colors[name][:3], 0.35), edgecolor=colors[name])
    jitter = np.random.default_rng(0)  # fixed: the same data always gives the same picture
    for row, (name, seeds) in enumerate(zip(names, values), start=1):
        ax.scatter(seeds, row + jitter.uniform(-0.12, 0.12, seeds.size), s=14, color=colors[name], zorder=3)
    ax.set_yticks(range(1, len(names) + 1), names)
    ax.set(xlabel=_label(metric), title=f"{task}: {_label(metric)} over seeds")
    ax.grid(axis="x", alpha=0.3)
    return fig


def sensitivity_curves(
    runs: pd.DataFrame,
    task: str,
    metric: str,
    colors: Mapping[str, Color] | None = None,
) -> Figure | None:
    """Tuning ``metric`` vs initial lr (log x), mean ± std over the tune-phase seeds.

    An lr where every seed diverged has no mean; it is marked with an ``x`` on the axis.
    """
    if metric not in runs.columns:
        return None
    rows = runs[(runs["task"] == task) & (runs["phase"] == "tune")]
    rows = rows[pd.to_numeric(rows["lr"], errors="coerce") > 0]
    if rows.empty:
        return None
    colors = colors or optimizer_colors(rows["optimizer"])
    fig = Figure(figsize=_SMALL, layout="constrained")
    ax = fig.subplots()
    for name, group in rows.groupby("optimizer", sort=True):
        stats = group.groupby("lr")[metric].agg(["mean", "std"]).sort_index()
        lrs, mean, std = stats.index.to_numpy(float), stats["mean"].to_numpy(float), stats["std"].fillna(0)
        ax.plot(lrs, mean, marker="o", markersize=4, color=colors[name], label=name)
        ax.fill_between(lrs, mean - std.to_numpy(float), mean + std.to_numpy(float), color=colors[name], alpha=0.15)
        lost = lrs[~np.isfinite(mean)]
        ax.plot(lost, np.zeros_like(lost), "x", color=colors[name], transform=ax.get_xaxis_transform(), clip_on=False)
    ax.set_xscale("log")
    ax.set(xlabel="initial lr", ylabel=_label(metric), title=f"{task}: lr sensitivity")
    ax.grid(alpha=0.3)
    _legend(fig, ax)
    return fig


def performance_profile_plot(profile: pd.DataFrame, colors: Mapping[str, Color] | None = None) -> Figure | None:
    """Dolan–Moré profile: fraction of tasks where an optimizer is within a factor τ of the best.

    Args:
        profile: ``DataFrame[optimizer, tau, fraction]`` from ``stats.performance_profile``.
    """
    if profile is None or profile.empty:
        return None
    colors = colors or optimizer_colors(profile["optimizer"])
    fig = Figure(figsize=_SMALL, layout="constrained")
    ax = fig.subplots()
    for name, group in profile.groupby("optimizer", sort=True):
        group = group.sort_values("tau")
        ax.step(group["tau"], group["fraction"], where="post", color=colors[name], label=name)
    ax.set(xlabel="τ (ratio to the best)", ylabel="fraction of tasks", ylim=(-0.02, 1.02))
    ax.set_title("performance profile")
    ax.grid(alpha=0.3)
    _legend(fig, ax)
    return fig


def _reported(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs whose numbers are reported: tuning runs sit at other lrs, so they are left
    out when final (or single) runs exist; :func:`sensitivity_curves` draws them instead."""
    reported = runs[runs["phase"] != "tune"]
    return reported if not reported.empty else runs


def _task_curves(
    runs: pd.DataFrame, curves: pd.DataFrame, task: str, statuses: tuple[str, ...] | None
) -> pd.DataFrame:
    """The task's curve points joined with their run's optimizer; non-finite values dropped."""
    chosen = _reported(runs[runs["task"] == task])
    if statuses is not None:
        chosen = chosen[chosen["status"].isin(statuses)]
    points = curves.merge(chosen[["run_id", "optimizer"]], on="run_id", how="inner")
    return points[np.isfinite(pd.to_numeric(points["value"], errors="coerce"))]


def _band_lines(ax: Axes, points: pd.DataFrame, x: str, colors: Mapping[str, Color]) -> None:
    """One line per optimizer: mean over runs at each ``x``, shaded ± one std."""
    for name, group in points.groupby("optimizer", sort=True):
        stats = group.groupby(x)["value"].agg(["mean", "std"]).sort_index()
        xs, mean = stats.index.to_numpy(float), stats["mean"].to_numpy(float)
        std = stats["std"].fillna(0.0).to_numpy(float)  # one seed: no band, not a NaN band
        # A short run logs a point or two: a marker keeps it from vanishing.
        marker = "o" if xs.size <= 5 else None
        ax.plot(xs, mean, color=colors[name], linewidth=1.4, marker=marker, markersize=3.5, label=name)
        ax.fill_between(xs, mean - std, mean + std, color=colors[name], alpha=0.18, linewidth=0)
    ax.grid(alpha=0.3)


def _spans_decades(values: np.ndarray) -> bool:
    """Log scale pays off for positive values spanning at least a decade; below that its
    ticks (``9×10⁻¹``) read worse than a linear axis."""
    return values.size > 0 and bool((values > 0).all()) and values.max() >= 10 * values.min()


def _linthresh(values: np.ndarray) -> float:
    """Symlog linear range: the smallest |lr| seen, but at most four decades below the largest."""
    magnitudes = np.abs(values[np.isfinite(values) & (values != 0)])
    if magnitudes.size == 0:
        return 1e-8
    floor = max(float(magnitudes.min()), float(magnitudes.max()) * 1e-4)
    return 10.0 ** math.floor(math.log10(floor))


def _label(metric: str) -> str:
    return re.sub(r"^val ", "validation ", metric.replace("_", " "))


def _legend(fig: Figure, ax: Axes) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize="small", frameon=False)
