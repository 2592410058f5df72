"""Interactive figures as plotly figure data: zoom, hover, legend toggling, per-seed drill-down.

Every figure shows one line per optimizer (the median over seeds) inside its min–max
band over seeds; each optimizer's seeds are one more legend entry, hidden until clicked
(``visible="legendonly"``), so a reader can open the seeds one optimizer at a time.
Figures are plain dicts (no validation pass: the report must stay fast) that
:mod:`gradretention.bench.reporting.render` embeds with plotly.js, once per file.
One optimizer keeps one colour in every figure of a report (:func:`palette`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from plotly.colors import qualitative

# 24 dark then 24 light hues: distinct colours for up to ~20 optimizers, then repeats.
_COLORS = tuple(qualitative.Dark24) + tuple(qualitative.Light24)
MAX_POINTS = 400  # per seed line: a longer curve is thinned evenly (first and last points kept)


def palette(labels: Iterable[str]) -> dict[str, str]:
    """One hex colour per distinct label, in sorted order: the same labels, the same colours."""
    names = sorted({str(label) for label in labels})
    return {name: _COLORS[index % len(_COLORS)] for index, name in enumerate(names)}


def band_figure(
    points: pd.DataFrame, colors: Mapping[str, str], *, title: str, x_title: str, y_title: str,
    log_x: bool = False, log_y: bool = False, markers: bool = False,
) -> dict[str, Any] | None:  # fmt: skip
    """Median and min–max band over seeds per label, seeds hidden behind one legend entry each.

    Args:
        points: columns ``label, x, seed, value`` (one row per seed and x).
    """
    points = points[np.isfinite(points["value"].astype(float))]
    if points.empty:
        return None
    traces: list[dict[str, Any]] = []
    points = points.sort_values(["label", "seed", "x"], kind="stable")
    for label, rows in points.groupby("label", sort=True):
        color = colors.get(label, "#444444")
        band = rows.groupby("x")["value"].agg(["median", "min", "max"]).sort_index()
        traces += _band_traces(str(label), band, color, markers or len(band) <= 12)
        traces += _seed_traces(str(label), rows, color)
    return _figure(traces, title, x_title, y_title, log_x, log_y)


def interval_figure(
    frame: pd.DataFrame, colors: Mapping[str, str], *, title: str, x_title: str, y_title: str,
) -> dict[str, Any] | None:  # fmt: skip
    """A mean line in its interval per label, e.g. best-so-far over trial orderings.

    Args:
        frame: columns ``label, x, mean, low, high``.
    """
    if frame.empty:
        return None
    traces: list[dict[str, Any]] = []
    for label, rows in frame.sort_values(["label", "x"]).groupby("label", sort=True):
        band = rows.set_index("x").rename(columns={"mean": "median", "low": "min", "high": "max"})
        traces += _band_traces(str(label), band, colors.get(label, "#444444"), True, "mean", "interval")
    return _figure(traces, title, x_title, y_title)


def _seed_traces(label: str, rows: pd.DataFrame, color: str) -> list[dict[str, Any]]:
    """One hidden line per seed, all behind the legend entry ``<label> · seeds``."""
    seeds, xs, ys = rows["seed"].to_numpy(), rows["x"].to_numpy(float), rows["value"].to_numpy(float)
    starts = np.flatnonzero(np.r_[True, seeds[1:] != seeds[:-1]])
    traces = []
    for index, (start, stop) in enumerate(zip(starts, [*starts[1:], len(seeds)])):
        keep = _thinned(stop - start) + start
        traces.append({
            "type": "scatter", "mode": "lines+markers" if keep.size <= 12 else "lines",
            "x": xs[keep].tolist(), "y": ys[keep].tolist(), "name": _escape(f"{label} · seeds"),
            "legendgroup": f"{label} · seeds", "showlegend": index == 0, "visible": "legendonly",
            "line": {"color": color, "width": 1, "dash": "dot"}, "marker": {"size": 4},
            "hovertemplate": f"{_escape(label)} seed {_escape(seeds[start])}<br>%{{x}}: %{{y:.4g}}<extra></extra>",
        })  # fmt: skip
    return traces


def _band_traces(label: str, band: pd.DataFrame, color: str, markers: bool, centre: str = "median",
                 spread: str = "seeds") -> list[dict[str, Any]]:  # fmt: skip
    xs = band.index.tolist()
    edge = {"type": "scatter", "mode": "lines", "x": xs, "line": {"width": 0, "color": color},
            "legendgroup": label, "showlegend": False, "hoverinfo": "skip"}  # fmt: skip
    return [
        {**edge, "y": band["max"].tolist()},
        {**edge, "y": band["min"].tolist(), "fill": "tonexty", "fillcolor": _rgba(color, 0.15)},
        {"type": "scatter", "mode": "lines+markers" if markers else "lines", "x": xs, "y": band["median"].tolist(),
         "name": _escape(label), "legendgroup": label, "line": {"color": color, "width": 2}, "marker": {"size": 6},
         "customdata": np.stack([band["min"], band["max"]], axis=1).tolist(),
         "hovertemplate": (f"{_escape(label)}<br>%{{x}}: {centre} %{{y:.4g}}"
                           f"<br>{spread} %{{customdata[0]:.4g}} – %{{customdata[1]:.4g}}<extra></extra>")},
    ]  # fmt: skip


def seed_strip(values: pd.DataFrame, colors: Mapping[str, str], *, title: str, y_title: str,
               chance: float) -> dict[str, Any] | None:  # fmt: skip
    """Every final seed as a dot (a failed seed as × at the chance level), a box per label.

    Args:
        values: columns ``label, seed, value, failed``.
    """
    values = values[np.isfinite(values["value"].astype(float))]
    if values.empty:
        return None
    traces = []
    for label, rows in values.groupby("label", sort=True):
        color = colors.get(label, "#444444")
        traces.append({"type": "box", "y": rows["value"].tolist(), "name": _escape(label), "legendgroup": label,
                       "boxpoints": False, "marker": {"color": color}, "line": {"color": color},
                       "showlegend": False, "hoverinfo": "skip"})  # fmt: skip
        for failed, part in rows.groupby("failed"):
            traces.append({
                "type": "scatter", "mode": "markers", "x": [_escape(label)] * len(part), "y": part["value"].tolist(),
                "name": _escape(label), "legendgroup": label, "showlegend": False, "customdata": part["seed"].tolist(),
                "marker": {"color": color, "size": 11 if failed else 7, "symbol": "x" if failed else "circle",
                           "line": {"width": 1, "color": "#ffffff"}},
                "hovertemplate": f"{_escape(label)} seed %{{customdata}}: %{{y:.4g}}"
                                 + (" (failed: counted at chance)" if failed else "") + "<extra></extra>",
            })  # fmt: skip
    figure = _figure(traces, title, "", y_title)
    if math.isfinite(chance) and values["failed"].any():
        figure["layout"]["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": chance, "y1": chance,
                                       "line": {"dash": "dash", "color": "#888888", "width": 1}}]  # fmt: skip
    figure["layout"]["showlegend"] = False
    return figure


def _figure(traces: list[dict[str, Any]], title: str, x_title: str, y_title: str, log_x: bool = False,
            log_y: bool = False) -> dict[str, Any]:  # fmt: skip
    axis = {"gridcolor": "#e5e8ee", "linecolor": "#b8c0cc", "zeroline": False, "automargin": True, "showline": True}
    return {
        "data": traces,
        "layout": {
            "title": {"text": _escape(title), "font": {"size": 15}, "x": 0.01},
            "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff", "colorway": list(_COLORS[:24]), "height": 380, "margin": {"l": 56, "r": 8, "t": 40, "b": 44},
            "xaxis": {**axis, "title": {"text": _escape(x_title)}, "type": "log" if log_x else "-", "exponentformat": "power"},
            "yaxis": {**axis, "title": {"text": _escape(y_title)}, "type": "log" if log_y else "-", "exponentformat": "power"},
            "legend": {"font": {"size": 11}, "itemclick": "toggle", "itemdoubleclick": "toggleothers"},
            "hovermode": "closest", "font": {"family": "system-ui, sans-serif", "size": 12},
        },
    }  # fmt: skip


def _thinned(count: int) -> np.ndarray:
    """Indices of at most :data:`MAX_POINTS` evenly spread points of ``count``, first and last kept."""
    if count <= MAX_POINTS:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, MAX_POINTS).round().astype(int))


def _rgba(color: str, alpha: float) -> str:
    red, green, blue = (int(color.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red},{green},{blue},{alpha})"


def _escape(text: object) -> str:
    """Plotly renders a subset of HTML in titles, names and hover text: escape what came from data."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
