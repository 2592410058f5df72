"""How numbers read in the report and the terminal: one formatter per kind of cell."""

from __future__ import annotations

import math

from gradretention.bench.analysis.facts import is_percent


def format_value(metric: str, value: float | None, digits: int = 2) -> str:
    """``0.9433`` as ``94.33`` for percentage metrics, else four significant digits; ``—`` for NaN."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    if is_percent(metric):
        return f"{100 * float(value):.{digits}f}"
    return f"{float(value):.4g}"


def format_diff(metric: str, value: float | None) -> str:
    """A difference with its sign: in points (two decimals) for percentage metrics, else three
    significant digits, so that a small loss difference never reads as ``+0.00``."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    text = f"{100 * float(value):+.2f}" if is_percent(metric) else f"{float(value):+.3g}"
    return "0.00" if text in ("+0.00", "-0.00") else text  # a sign on a rounded zero would claim a direction


def metric_label(metric: str) -> str:
    """``test_accuracy`` -> ``test accuracy (%)``; ``val_loss`` -> ``validation loss``."""
    text = metric.replace("_", " ")
    text = "validation " + text[4:] if text.startswith("val ") else text
    return text + (" (%)" if is_percent(metric) else "")


def mean_sd(metric: str, mean: float, sd: float) -> str:
    """``mean ± sd``; the mean alone for one value, ``—`` for none."""
    if sd is None or not math.isfinite(float(sd)):
        return format_value(metric, mean)
    return f"{format_value(metric, mean)} ± {format_value(metric, sd)}"


def interval(metric: str, low: float, high: float, *, spread: float | None = None) -> str:
    """``[-1.20, +0.40]`` in the metric's difference units; a zero-width interval is not shown as one."""
    if low is None or high is None or not (math.isfinite(float(low)) and math.isfinite(float(high))):
        return "—"
    if spread == 0 or low == high:
        return "none: Δ equal on every seed"
    return f"[{format_diff(metric, low)}, {format_diff(metric, high)}]"


def p_value(p: float | None) -> str:
    if p is None or not math.isfinite(float(p)):
        return "—"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def share(k: int, n: int) -> str:
    """``4 of 5``: finished or reached out of planned."""
    return f"{int(k)} of {int(n)}"


def lr(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(float(value)) else f"{float(value):.3g}"


def duration(seconds: float) -> str:
    """``252.4`` -> ``4 min 12 s``; ``3.2`` -> ``3.2 s``; ``7300`` -> ``2 h 1 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
