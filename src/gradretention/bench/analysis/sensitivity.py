"""lr sensitivity on the shared absolute grid, with a CI over the tuning seeds.

For an optimizer with grid points α₀¹ < … < α₀ᴷ and scores S_k (mean validation metric
over the tuning seeds, a failed seed at chance), with best score S* = max_k S_k:

    width = max over runs k..l of consecutive points with S_j ≥ S* − 0.01 (j = k..l)
            of log10(α₀ˡ / α₀ᵏ)     (decades; one point alone is 0)

Its CI is the 2.5–97.5 % percentile of the same width on bootstrap resamples of the
tuning seeds (a resample keeps a seed's runs at every lr together). Budget-protocol
trials (random lrs, other hyperparameters varying) have no grid and no width.

How far 1 point can be resolved (issue 19): with a few tuning seeds, the mean at each point
carries the run-to-run noise, so even an optimizer whose result does not depend on α₀ at all
can show a small width. Two reference numbers say when a width is limited by that noise:

    null_width  = median over P permutations π (each seed's scores shuffled across the grid
                  points independently, i.e. α₀ made irrelevant) of width(S∘π)
    lr_effect_p = (1 + #{π : range(S∘π) ≥ range(S)}) / (1 + P),   range = max_k S_k − min_k S_k

``null_width`` is the width the same runs would give if α₀ had no effect; ``lr_effect_p`` is a
permutation test of "the score depends on α₀" (small: the grid's spread exceeds the seeds' noise;
large: it does not, so a small width says nothing about α₀, only about the noise).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gradretention.bench.analysis.facts import higher_is_better
from gradretention.bench.analysis.verdicts import FAILED

TOLERANCE = 0.01
# Accuracy differences such as 0.90 - 0.89 are 0.010000000000000009 in floats.
_SLACK = 1e-9
SUMMARY_COLUMNS = ("label", "best_lr", "best_score", "width", "ci_low", "ci_high", "points", "seeds", "null_width",
                   "lr_effect_p")


def grid_scores(tune: pd.DataFrame, metric: str, chance: float) -> pd.DataFrame:
    """Per label, lr and seed: the validation value (failures at ``chance``).

    Runs of the budget protocol (a ``trial`` in their config) are left out.
    """
    rows = tune[(tune["phase"] == "tune") & (pd.to_numeric(tune["lr"], errors="coerce") > 0)]
    rows = rows[~rows["config_json"].astype(str).str.contains('"trial"', regex=False)]
    rows = rows[rows["status"].isin(("done", *FAILED))]
    values = pd.to_numeric(rows[metric], errors="coerce") if metric in rows else pd.Series(np.nan, rows.index)
    values = values.where(rows["status"] == "done").fillna(chance)
    return pd.DataFrame({"label": rows["label"], "lr": rows["lr"].astype(float), "seed": rows["seed"],
                         "value": values})  # fmt: skip


def width_decades(lrs: np.ndarray, scores: np.ndarray, higher: bool = True, tolerance: float = TOLERANCE) -> float:
    """The longest run of consecutive grid points within ``tolerance`` of the best score, in decades.

    ``lrs`` sorted ascending; a NaN score (no seed at that lr) breaks a run.

    Example:
        >>> width_decades(np.array([1e-3, 1e-2, 1e-1, 1.0]), np.array([0.5, 0.9, 0.895, 0.6]))
        1.0
    """
    return float(widths_decades(lrs, np.asarray(scores, dtype=float)[None, :], higher, tolerance)[0])


def widths_decades(lrs: np.ndarray, scores: np.ndarray, higher: bool = True, tolerance: float = TOLERANCE) -> np.ndarray:
    """:func:`width_decades` of every row of ``scores`` (resamples × grid points) at once."""
    signed = scores if higher else -scores
    best = np.nanmax(np.where(np.isfinite(signed), signed, -np.inf), axis=1, keepdims=True)
    near = np.isfinite(signed) & (signed >= best - tolerance - _SLACK)
    index = np.arange(signed.shape[1])
    # The run containing point k starts just after the last point <= k outside the band.
    start = np.maximum.accumulate(np.where(near, -1, index), axis=1) + 1
    logs = np.log10(lrs)
    spans = np.where(near, logs[None, :] - logs[np.minimum(start, len(lrs) - 1)], 0.0)
    widths = spans.max(axis=1)
    return np.where(np.isfinite(best[:, 0]), widths, np.nan)


def summary(scores: pd.DataFrame, metric: str, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per label: best lr and score, width and its bootstrap CI, grid points and tuning seeds."""
    higher = higher_is_better(metric)
    rng = np.random.default_rng(seed)
    out = []
    for label, rows in scores.groupby("label", sort=True):
        matrix = rows.pivot_table(index="seed", columns="lr", values="value", aggfunc="mean").sort_index(axis=1)
        lrs, values = matrix.columns.to_numpy(float), matrix.to_numpy(float)
        means = _nanmean(values)
        if not np.isfinite(means).any():  # no score recorded at any lr: nothing to measure
            continue
        best = int(np.nanargmax(means if higher else -means))  # first = smaller lr on ties
        draws = rng.integers(0, values.shape[0], size=(n_resamples, values.shape[0]))
        widths = widths_decades(lrs, _nanmean(values[draws]), higher)
        low, high = np.nanquantile(widths, [0.025, 0.975]) if values.shape[0] > 1 else (math.nan, math.nan)
        null_width, p = permutation_reference(lrs, values, higher, rng, n_resamples)
        out.append({"label": label, "best_lr": lrs[best], "best_score": means[best],
                    "width": width_decades(lrs, means, higher), "ci_low": float(low), "ci_high": float(high),
                    "points": len(lrs), "seeds": values.shape[0], "null_width": null_width,
                    "lr_effect_p": p})  # fmt: skip
    return pd.DataFrame(out, columns=list(SUMMARY_COLUMNS))


def permutation_reference(lrs: np.ndarray, values: np.ndarray, higher: bool, rng: np.random.Generator,
                          n: int) -> tuple[float, float]:  # fmt: skip
    """(null_width, lr_effect_p) of a seeds × grid-points score matrix (see the module docstring).

    Example:
        >>> flat = np.array([[0.90, 0.88, 0.91, 0.89], [0.87, 0.90, 0.88, 0.91]])
        >>> permutation_reference(np.array([1e-3, 1e-2, 1e-1, 1.0]), flat, True, np.random.default_rng(0), 200)[1] > 0.5
        True
    """
    if values.shape[1] < 2:
        return math.nan, math.nan
    shuffled = rng.permuted(np.broadcast_to(values, (n, *values.shape)), axis=2)
    means = _nanmean(shuffled)
    spread = np.nanmax(means, axis=1) - np.nanmin(means, axis=1)
    observed = _nanmean(values)
    observed_spread = np.nanmax(observed) - np.nanmin(observed)
    p = (1 + np.count_nonzero(spread >= observed_spread - _SLACK)) / (1 + n)
    return float(np.nanmedian(widths_decades(lrs, means, higher))), float(p)


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over the seed axis (-2) ignoring NaN, without numpy's empty-slice warning."""
    counts = np.isfinite(values).sum(axis=-2)
    sums = np.nansum(values, axis=-2)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def width_difference(
    scores: pd.DataFrame, label: str, base: str, metric: str, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:  # fmt: skip
    """``width(label) − width(base)`` in decades and its 2.5–97.5 % CI over tuning-seed resamples.

    Both optimizers ran the same tuning seeds; a resample draws seeds once and applies
    them to both (paired). NaN where either lacks a grid or only one seed is shared.
    """
    higher = higher_is_better(metric)
    matrices = {}
    for name in (label, base):
        rows = scores[scores["label"] == name]
        matrices[name] = rows.pivot_table(index="seed", columns="lr", values="value", aggfunc="mean").sort_index(axis=1)
    if any(m.empty for m in matrices.values()):
        return math.nan, math.nan, math.nan
    seeds = sorted(set(matrices[label].index) & set(matrices[base].index))
    values = {n: m.loc[seeds].to_numpy(float) for n, m in matrices.items()}
    lrs = {n: m.columns.to_numpy(float) for n, m in matrices.items()}
    diff = width_decades(lrs[label], _nanmean(values[label]), higher) - width_decades(lrs[base], _nanmean(values[base]), higher)
    if len(seeds) < 2:
        return diff, math.nan, math.nan
    draws = np.random.default_rng(seed).integers(0, len(seeds), size=(n_resamples, len(seeds)))
    widths = {n: widths_decades(lrs[n], _nanmean(values[n][draws]), higher) for n in (label, base)}
    low, high = np.nanquantile(widths[label] - widths[base], [0.025, 0.975])
    return diff, float(low), float(high)
