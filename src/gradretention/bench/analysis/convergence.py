"""How fast: steps and seconds to a stated target, and the budget protocol's tuning cost.

Steps to target (evidence spec): the first step at which the per-step training loss, or
the validation metric at its evaluations, reaches the task's stated target; reported as
the median over the seeds that reached it, with "k of n seeds" (a failed seed is one of
the n that did not).

Best-so-far (budget protocol, Crowded Valley): the trials of an optimizer, each scored
by its mean validation metric over the tuning seeds, are put in B random orders; after
k trials the best score so far is averaged over the orders (band: 2.5–97.5 %).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from gradretention.bench.analysis.facts import higher_is_better, target_of
from gradretention.bench.analysis.verdicts import FAILED
from gradretention.bench.stats import bootstrap_ci

# (kind, steps column, seconds column, target column in new stores)
_TARGETS = (("validation", "steps_to_target", "seconds_to_target", "val_target"),
            ("train loss", "train_steps_to_target", "train_seconds_to_target", "train_loss_target"))  # fmt: skip
TARGET_COLUMNS = ("label", "kind", "target", "reached", "n", "median_steps", "median_seconds")


def time_to_target(final: pd.DataFrame, task: str) -> pd.DataFrame:
    """Per label and target kind (validation, train loss): k reached of n, median steps and seconds.

    ``n`` counts the finished and failed seeds; a kind the store did not record is left out.
    """
    rows = final[final["status"].isin(("done", *FAILED))]
    out = []
    for kind, steps, seconds, target_column in _TARGETS:
        if steps not in rows.columns:
            continue
        target = target_text(rows, kind, target_column, task)
        for label, group in rows.groupby("label", sort=True):
            hit = group[pd.to_numeric(group[steps], errors="coerce").notna()]
            out.append({"label": label, "kind": kind, "target": target, "reached": len(hit), "n": len(group),
                        "median_steps": pd.to_numeric(hit[steps], errors="coerce").median(),
                        "median_seconds": pd.to_numeric(hit.get(seconds), errors="coerce").median()})  # fmt: skip
    return pd.DataFrame(out, columns=list(TARGET_COLUMNS))


def steps_ratio(
    final: pd.DataFrame, label: str, base: str, column: str, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float, int]:  # fmt: skip
    """Geometric-mean ratio of steps to target, ``label / base``, over the seeds both reached.

    Returns ``(ratio, low, high, n)``: the CI is a percentile bootstrap of the mean log
    ratio over those seeds; below 1 means ``label`` got there in fewer steps.
    """
    if column not in final.columns:
        return math.nan, math.nan, math.nan, 0
    steps = final.pivot_table(index="seed", columns="label", values=column, aggfunc="first")
    if label not in steps or base not in steps:
        return math.nan, math.nan, math.nan, 0
    pair = steps[[label, base]].apply(pd.to_numeric, errors="coerce").dropna()
    pair = pair[(pair > 0).all(axis=1)]
    logs = np.log(pair[label].to_numpy(float) / pair[base].to_numpy(float))
    if logs.size == 0:
        return math.nan, math.nan, math.nan, 0
    low, high = bootstrap_ci(logs, 0.95, n_resamples, seed) if logs.size > 1 else (math.nan, math.nan)
    return float(np.exp(logs.mean())), float(np.exp(low)), float(np.exp(high)), int(logs.size)


def target_text(rows: pd.DataFrame, kind: str, column: str, task: str) -> str:
    """The stated target, e.g. ``validation accuracy ≥ 0.9`` or ``train loss ≤ 0.5``."""
    if column in rows.columns and pd.to_numeric(rows[column], errors="coerce").notna().any():
        value = float(pd.to_numeric(rows[column], errors="coerce").dropna().iloc[0])
        metric = "loss" if kind == "train loss" else target_of(task)[0]
    elif kind == "validation":
        metric, value = target_of(task)
        if value is None:
            return "validation target not recorded"
    else:
        return "train-loss target not recorded"
    sign = "≤" if not higher_is_better(metric) else "≥"
    prefix = "train" if kind == "train loss" else "validation"
    return f"{prefix} {metric} {sign} {value:.3g}"


def trial_number(config_json: str) -> int | None:
    """The budget trial index in a run's config (``extra`` holds ``["trial", i]``); ``None`` if absent."""
    try:
        extra = json.loads(config_json or "{}").get("extra") or []
    except (json.JSONDecodeError, AttributeError):
        return None
    pairs = extra.items() if isinstance(extra, dict) else (tuple(item) for item in extra if len(item) == 2)
    return next((int(value) for key, value in pairs if key == "trial"), None)


def trial_scores(tune: pd.DataFrame, metric: str, chance: float) -> pd.DataFrame:
    """Per label and trial: the mean validation score over tuning seeds (failures at chance)."""
    rows = tune[tune["phase"] == "tune"]
    rows = rows.assign(trial=[trial_number(c) for c in rows["config_json"]])
    rows = rows[rows["trial"].notna() & rows["status"].isin(("done", *FAILED))]
    if rows.empty:
        return pd.DataFrame(columns=["label", "trial", "score", "runs", "seconds"])
    values = pd.to_numeric(rows[metric], errors="coerce") if metric in rows else pd.Series(np.nan, rows.index)
    seconds = pd.to_numeric(rows["wall_seconds"], errors="coerce") if "wall_seconds" in rows else np.nan
    rows = rows.assign(value=values.where(rows["status"] == "done").fillna(chance), seconds=seconds)
    scored = rows.groupby(["label", "trial"]).agg(score=("value", "mean"), runs=("run_id", "size"),
                                                  seconds=("seconds", "sum"))  # fmt: skip
    return scored.reset_index()


def best_so_far(scores: pd.DataFrame, metric: str, orderings: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per label and k = 1..K trials: mean, low and high (2.5 / 97.5 %) best-so-far over orderings."""
    higher = higher_is_better(metric)
    rng = np.random.default_rng(seed)
    out = []
    for label, rows in scores.groupby("label", sort=True):
        values = rows["score"].to_numpy(float)
        values = values[np.isfinite(values)]  # a trial without a score cannot be the best so far
        if values.size == 0:
            continue
        signed = values if higher else -values
        orders = np.argsort(rng.random((orderings, values.size)), axis=1)
        running = np.maximum.accumulate(signed[orders], axis=1) * (1 if higher else -1)
        low, high = np.quantile(running, [0.025, 0.975], axis=0)
        for k in range(values.size):
            out.append({"label": label, "trials": k + 1, "mean": float(running[:, k].mean()),
                        "low": float(low[k]), "high": float(high[k])})  # fmt: skip
    return pd.DataFrame(out, columns=["label", "trials", "mean", "low", "high"])


def tuning_cost(tune: pd.DataFrame) -> str:
    """``"216 tuning runs (54 per optimizer), 3 min 2 s of run time"``: what choosing cost."""
    seconds = float(pd.to_numeric(tune.get("wall_seconds", pd.Series(dtype=float)), errors="coerce").sum())
    minutes, secs = divmod(round(seconds), 60)
    spent = f"{minutes} min {secs} s" if minutes else f"{seconds:.1f} s"
    per = tune.groupby("label").size() if "label" in tune else pd.Series(dtype=int)
    each = f" ({int(per.iloc[0])} per optimizer)" if len(per) and per.nunique() == 1 else ""
    return f"{len(tune)} tuning run{'s' * (len(tune) != 1)}{each}, {spent} of run time"
