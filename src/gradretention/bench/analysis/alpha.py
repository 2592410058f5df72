"""Hypergradient honesty: did the learning rate α actually move, and did it stay positive?

Per run, over every logged step t and parameter group:

    movement  = max_t |α_t / α_0 − 1|        "α inactive" when below 0.01
    min_ratio = min_t α_t / α_0               "α negative" when some α_t ≤ 0

α is the *effective* step size: the optimizer's telemetry ``lr/g<i>`` where it logs one
(EnhancedSGD steps with ``lr · lr_scale`` and never rewrites ``group["lr"]``), else the
group's ``lr``. Runs recorded by this version also carry ``alpha_movement``,
``alpha_min_ratio`` and ``alpha_negative`` (tracked at every step from ``group["lr"]``);
the flags combine both sources (the larger movement, the smaller ratio), so neither a
coarse log interval nor an untouched ``group["lr"]`` hides a move. The flags concern
optimizers whose α is meant to adapt (:func:`adapts_lr`): a baseline's constant lr is
inactive by design and is not flagged.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from gradretention.bench.stats import BASELINES

INACTIVE_BELOW = 0.01
_FIXED_ALPHA = ("baseline", "retention")  # registry families whose group lr stays put by design
FLAG_COLUMNS = ("run_id", "alpha_movement", "alpha_min_ratio", "alpha_negative", "adaptive")


def lr_points(curves: pd.DataFrame) -> pd.DataFrame:
    """The effective α per run, group and step (finite values): columns run_id, step, group, value.

    A run whose optimizer logs ``lr/g<i>`` telemetry is read from it; others from ``opt``/``lr``.
    """
    opt = curves[curves["split"] == "opt"]
    plain = opt[opt["name"] == "lr"].assign(group=lambda f: f["group"].fillna(0).astype(int))
    telemetry = opt[opt["name"].astype(str).str.fullmatch(r"lr/g\d+")]
    telemetry = telemetry.assign(group=telemetry["name"].str.slice(4).astype(int))
    points = pd.concat([plain[~plain["run_id"].isin(set(telemetry["run_id"]))], telemetry], ignore_index=True)
    return points[np.isfinite(points["value"].astype(float))][["run_id", "step", "group", "value"]]


def run_flags(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per run: :data:`FLAG_COLUMNS`, from the curves and the recorded columns together.

    ``adaptive`` is False where an unmoved α says nothing (:func:`adapts_lr`).
    """
    frame = runs[["run_id"]].merge(_from_curves(lr_points(curves)), on="run_id", how="left")
    if {"alpha_movement", "alpha_min_ratio", "alpha_negative"} <= set(runs.columns):
        recorded = runs.set_index("run_id")
        column = lambda name: pd.to_numeric(frame["run_id"].map(recorded[name]), errors="coerce")  # noqa: E731
        frame["alpha_movement"] = np.fmax(frame["alpha_movement"].astype(float), column("alpha_movement"))
        frame["alpha_min_ratio"] = np.fmin(frame["alpha_min_ratio"].astype(float), column("alpha_min_ratio"))
        negative = column("alpha_negative").fillna(0) > 0
        frame["alpha_negative"] = frame["alpha_negative"].astype("boolean").fillna(False).astype(bool) | negative
    frame["alpha_negative"] = frame["alpha_negative"].astype("boolean").fillna(False).astype(bool)
    names = runs.set_index("run_id")["optimizer_name"].astype(str)
    frame["adaptive"] = frame["run_id"].map(names).map(adapts_lr).astype(bool)
    return frame.reset_index(drop=True)


@functools.cache
def adapts_lr(name: str) -> bool:
    """Whether the optimizer named ``name`` is built to move its group lr α: one of this
    package's lr controllers (hypergradient, variance, Q-learning families).

    A baseline keeps α constant by design; RescaledSGD adapts per-element rates under a
    fixed peak α; a peer optimizer (Prodigy, D-Adaptation, ...) adapts its ``d`` at a fixed
    lr. For those an unmoved α says nothing, so they are not flagged.
    """
    from gradretention.optim.registry import available_optimizers, get_entry  # late: it loads torch

    name = name.split("[", 1)[0]
    return name in available_optimizers() and name not in BASELINES and get_entry(name).family not in _FIXED_ALPHA


def _from_curves(points: pd.DataFrame) -> pd.DataFrame:
    if points.empty:
        return pd.DataFrame(columns=["run_id", "alpha_movement", "alpha_min_ratio", "alpha_negative"])
    points = points.sort_values(["run_id", "group", "step"], kind="stable")
    first = points.groupby(["run_id", "group"])["value"].transform("first")
    ratio = (points["value"] / first.where(first != 0)).astype(float)
    stats = points.assign(ratio=ratio, moved=(ratio - 1).abs(), negative=points["value"] <= 0)
    out = stats.groupby("run_id").agg(alpha_movement=("moved", "max"), alpha_min_ratio=("ratio", "min"),
                                      alpha_negative=("negative", "any"))  # fmt: skip
    return out.reset_index()


def flag_counts(runs: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """Per label of adaptive optimizers: runs, α inactive, α negative, median movement."""
    joined = runs[["run_id", "label"]].merge(flags, on="run_id")
    joined = joined[joined["adaptive"] & joined["alpha_movement"].notna()]
    out = []
    for label, group in joined.groupby("label", sort=True):
        moved = group["alpha_movement"].astype(float)
        out.append({"label": label, "runs": len(group), "inactive": int((moved < INACTIVE_BELOW).sum()),
                    "negative": int(group["alpha_negative"].sum()), "median_movement": float(moved.median()),
                    "min_ratio": float(group["alpha_min_ratio"].astype(float).min())})  # fmt: skip
    return pd.DataFrame(out, columns=["label", "runs", "inactive", "negative", "median_movement", "min_ratio"])


def trajectory_bands(runs: pd.DataFrame, curves: pd.DataFrame, group: int = 0) -> pd.DataFrame:
    """α_t / α_0 of parameter group ``group`` per label and step: median, min and max over seeds.

    Also returns each run's own ratio (column ``run_id`` and ``ratio``) so a figure can
    offer the seeds one by one: rows with ``run_id`` set are per-seed points, rows with
    ``run_id`` NaN are the band.
    """
    points = lr_points(curves[curves["run_id"].isin(runs["run_id"])])
    points = points[points["group"] == group].sort_values(["run_id", "step"], kind="stable")
    if points.empty:
        return pd.DataFrame(columns=["label", "step", "median", "low", "high", "run_id", "seed", "ratio"])
    first = points.groupby("run_id")["value"].transform("first")
    points = points.assign(ratio=points["value"] / first.where(first != 0))
    points = points.merge(runs[["run_id", "label", "seed"]], on="run_id")
    band = points.groupby(["label", "step"])["ratio"].agg(median="median", low="min", high="max").reset_index()
    seeds = points[["label", "step", "run_id", "seed", "ratio"]]
    return pd.concat([band, seeds], ignore_index=True)


def describe_flags(counts: pd.Series) -> str:
    """``"α inactive in 3 of 5 runs; α negative in 1 of 5 runs"``, or ``""`` when nothing is flagged."""
    parts = []
    if counts["inactive"]:
        parts.append(f"α inactive (moved < {INACTIVE_BELOW:.0%}) in {counts['inactive']} of {counts['runs']} runs")
    if counts["negative"]:
        parts.append(f"α negative (α_t ≤ 0) in {counts['negative']} of {counts['runs']} runs")
    return "; ".join(parts)


def format_movement(value: float) -> str:
    """``0.0021`` -> ``0.21 %``; NaN -> ``—``."""
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.3g} %"
