"""Statistics over the runs table (:meth:`ResultsStore.runs`): spreads, tests, profiles.

Conventions shared by every function:

* only runs with status ``done`` give metric values; ``diverged`` runs are counted
  (``n_diverged``, time-to-target) but never averaged; ``error``/``interrupted`` runs
  are ignored, since a resumed sweep redoes them;
* results compare the evaluation phases (``"final"`` and ``"single"``) unless ``phases``
  says otherwise; the learning-rate functions read the ``"tune"`` phase;
* one optimizer is one spec string (column ``optimizer``); a baseline is an optimizer
  whose registry name (before ``[``) is in :data:`BASELINES`;
* degenerate samples (fewer than two values, zero variance) give NaN, never a warning.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from gradretention.bench.store import optimizer_base_name

BASELINES: tuple[str, ...] = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
EVALUATION_PHASES: tuple[str, ...] = ("final", "single")
_NAN = float("nan")
# Accuracy differences such as 0.90 - 0.89 are 0.010000000000000009 in floats; a tolerance
# of one point must still include them.
_FLOAT_SLACK = 1e-9


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95, n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:  # fmt: skip
    """Percentile bootstrap confidence interval of the mean; ``(nan, nan)`` below two values.

    Example:
        >>> low, high = bootstrap_ci([0.90, 0.92, 0.91, 0.95])
        >>> low <= 0.92 <= high
        True
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return _NAN, _NAN
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def summarize(
    runs: pd.DataFrame, metric: str, by: Sequence[str] = ("task", "optimizer"), *,
    phases: Sequence[str] | None = EVALUATION_PHASES, confidence: float = 0.95, seed: int = 0,
) -> pd.DataFrame:  # fmt: skip
    """Mean ± spread of ``metric`` per group: n, n_diverged, mean, std, ci_low, ci_high.

    ``std`` is the sample standard deviation (ddof=1); the CI is a seeded percentile
    bootstrap of the mean (:func:`bootstrap_ci`). ``phases=None`` keeps every phase.
    """
    rows = _evaluated(runs, [metric, *by], phases)
    out = []
    for key, group in rows.groupby(list(by), sort=True, dropna=False):
        done = _done_values(group, metric)
        low, high = bootstrap_ci(done, confidence=confidence, seed=seed)
        out.append({
            **dict(zip(by, key)), "n": done.size,
            "n_diverged": int((group["status"] == "diverged").sum()),
            "mean": done.mean() if done.size else _NAN,
            "std": done.std(ddof=1) if done.size > 1 else _NAN,
            "ci_low": low, "ci_high": high,
        })  # fmt: skip
    return pd.DataFrame(out, columns=[*by, "n", "n_diverged", "mean", "std", "ci_low", "ci_high"])


def holm(pvalues: Iterable[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error); NaNs stay NaN and don't count.

    Sorted ascending, ``p_(i)`` becomes ``max_{j<=i} min(1, (m - j + 1) p_(j))``.

    Example:
        >>> holm([0.01, 0.04, 0.03]).round(4).tolist()
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(list(pvalues), dtype=float)
    adjusted = np.full(p.shape, _NAN)
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = (order.size - np.arange(order.size)) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def cohens_d(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """``(mean(a) - mean(b)) / pooled_sd``; NaN when the pooled sd is zero or undefined."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    dof = x.size + y.size - 2
    if x.size == 0 or y.size == 0 or dof <= 0:
        return _NAN
    ss = ((x - x.mean()) ** 2).sum() + ((y - y.mean()) ** 2).sum()
    pooled = np.sqrt(ss / dof)
    return float((x.mean() - y.mean()) / pooled) if pooled > 0 else _NAN


def two_sample_tests(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Welch's t-test and the two-sided Mann–Whitney U test of ``a`` against ``b``.

    Both need two values per side; Welch's t also needs some variance, and U needs the
    pooled values not all equal. Otherwise the statistic and p-value are NaN.
    """
    out = dict.fromkeys(("welch_t", "welch_p", "mwu_u", "mwu_p"), _NAN)
    if min(a.size, b.size) < 2:
        return out
    if a.var() > 0 or b.var() > 0:
        # Seeds that agree to the last digits make scipy warn about cancellation in the
        # moments; the test is still defined, and the warning would only clutter `bench`.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            welch = sps.ttest_ind(a, b, equal_var=False)
        out["welch_t"], out["welch_p"] = float(welch.statistic), float(welch.pvalue)
    if np.ptp(np.concatenate([a, b])) > 0:
        mwu = sps.mannwhitneyu(a, b, alternative="two-sided")
        out["mwu_u"], out["mwu_p"] = float(mwu.statistic), float(mwu.pvalue)
    return out


def compare_to_best_baseline(
    runs: pd.DataFrame, metric: str, higher_is_better: bool = True,
    baselines: Sequence[str] = BASELINES, *, phases: Sequence[str] | None = EVALUATION_PHASES,
) -> pd.DataFrame:  # fmt: skip
    """Every optimizer against the best baseline of its task (by mean ``metric``).

    ``diff`` and ``cohens_d`` are optimizer minus baseline whatever the direction; p-values
    are Holm-adjusted within each task; ``significant`` is ``welch_p_holm < 0.05``. Tasks
    without a finished baseline run are left out.
    """
    rows = _evaluated(runs, [metric, "task", "optimizer"], phases)
    done = rows[(rows["status"] == "done") & rows[metric].notna()]
    tables = [
        _task_comparison(task, group, metric, higher_is_better, baselines)
        for task, group in done.groupby("task", sort=True)
    ]
    columns = ["task", "optimizer", "baseline", "n", "n_baseline", "mean", "baseline_mean",
               "diff", "welch_t", "welch_p", "mwu_u", "mwu_p", "welch_p_holm", "mwu_p_holm",
               "cohens_d", "significant"]  # fmt: skip
    frame = pd.concat([pd.DataFrame(t) for t in tables if t] or [pd.DataFrame()], ignore_index=True)
    return frame.reindex(columns=columns)


def _task_comparison(
    task: str, rows: pd.DataFrame, metric: str, higher: bool, baselines: Sequence[str]
) -> list[dict[str, object]]:
    samples = {o: g[metric].to_numpy(float) for o, g in rows.groupby("optimizer", sort=True)}
    base_means = {o: s.mean() for o, s in samples.items() if optimizer_base_name(o) in baselines}
    if not base_means:
        return []
    # Sorted iteration + strict comparison: ties go to the alphabetically first baseline.
    best = (max if higher else min)(base_means, key=base_means.__getitem__)
    ref = samples[best]
    table = [
        {"task": task, "optimizer": opt, "baseline": best, "n": s.size, "n_baseline": ref.size,
         "mean": s.mean(), "baseline_mean": ref.mean(), "diff": s.mean() - ref.mean(),
         **two_sample_tests(s, ref), "cohens_d": cohens_d(s, ref)}
        for opt, s in samples.items() if opt != best
    ]  # fmt: skip
    for name in ("welch_p", "mwu_p"):
        for row, adjusted in zip(table, holm(r[name] for r in table)):
            row[f"{name}_holm"] = float(adjusted)
    for row in table:
        row["significant"] = bool(row["welch_p_holm"] < 0.05)
    return table


def time_to_target(
    runs: pd.DataFrame, *, phases: Sequence[str] | None = EVALUATION_PHASES
) -> pd.DataFrame:
    """How often and how fast each optimizer reaches its task's target.

    Columns: task, optimizer, n (done + diverged runs), reached (fraction with a
    ``steps_to_target``), median_steps_to_target and median_seconds_to_target over the
    runs that reached it (NaN if none did).
    """
    rows = _evaluated(runs, ["task", "optimizer", "steps_to_target", "seconds_to_target"], phases)
    out = []
    for (task, opt), group in rows.groupby(["task", "optimizer"], sort=True):
        hit = group[group["steps_to_target"].notna()]
        out.append({
            "task": task, "optimizer": opt, "n": len(group), "reached": len(hit) / len(group),
            "median_steps_to_target": hit["steps_to_target"].astype(float).median(),
            "median_seconds_to_target": hit["seconds_to_target"].astype(float).median(),
        })  # fmt: skip
    columns = ["task", "optimizer", "n", "reached", "median_steps_to_target",
               "median_seconds_to_target"]  # fmt: skip
    return pd.DataFrame(out, columns=columns)


def lr_sensitivity(runs: pd.DataFrame, metric: str, higher_is_better: bool = True) -> pd.DataFrame:
    """Mean ``metric`` over seeds per task, optimizer and lr, from the ``"tune"`` phase.

    Columns: task, optimizer, lr, n, n_diverged, mean (done runs only) and score, the
    mean with every diverged run counted as the worst possible value (``-inf`` when higher
    is better, ``+inf`` otherwise) — the quantity the fair tuning protocol ranks by.
    """
    rows = _evaluated(runs, [metric, "task", "optimizer", "lr"], ("tune",))
    rows = rows[rows["lr"].notna()]
    out = []
    for (task, opt, lr), group in rows.groupby(["task", "optimizer", "lr"], sort=True):
        done = _done_values(group, metric)
        worst = -np.inf if higher_is_better else np.inf
        n_bad = len(group) - done.size  # diverged, or done without the metric
        out.append({
            "task": task, "optimizer": opt, "lr": float(lr), "n": done.size,
            "n_diverged": int((group["status"] == "diverged").sum()),
            "mean": done.mean() if done.size else _NAN,
            "score": worst if n_bad else done.mean(),
        })  # fmt: skip
    columns = ["task", "optimizer", "lr", "n", "n_diverged", "mean", "score"]
    return pd.DataFrame(out, columns=columns)


def best_lr_per_optimizer(
    runs: pd.DataFrame, metric: str = "val_accuracy", higher_is_better: bool = True
) -> dict[tuple[str, str], float]:
    """The fair tuning protocol's pick: per (task, optimizer) the lr with the best score.

    Scores come from :func:`lr_sensitivity` (a diverged seed makes an lr the worst);
    ties go to the smaller lr. Empty when there are no ``"tune"`` runs.
    """
    table = _ranked_lrs(lr_sensitivity(runs, metric, higher_is_better), higher_is_better)
    first = table.groupby(["task", "optimizer"], sort=True).head(1)
    return {(t, o): float(lr) for t, o, lr in zip(first["task"], first["optimizer"], first["lr"])}


def lr_sensitivity_share(
    runs: pd.DataFrame, metric: str, tolerance: float = 0.01, higher_is_better: bool = True
) -> pd.DataFrame:
    """How forgiving each optimizer is about its learning rate.

    Columns: task, optimizer, best_lr, best (its mean), n_lrs (grid size) and
    share_within, the fraction of the grid whose mean is within ``tolerance`` of the best
    (0.01 = one accuracy point) with no diverged seed.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    sign = 1.0 if higher_is_better else -1.0
    table = _ranked_lrs(lr_sensitivity(runs, metric, higher_is_better), higher_is_better)
    out = []
    for (task, opt), grid in table.groupby(["task", "optimizer"], sort=True):
        best = grid.iloc[0]
        gap = sign * (best["mean"] - grid["mean"])
        within = (grid["n_diverged"] == 0) & (gap <= tolerance + _FLOAT_SLACK)
        out.append({
            "task": task, "optimizer": opt, "best_lr": best["lr"], "best": best["mean"],
            "n_lrs": len(grid), "share_within": float(within.mean()),
        })  # fmt: skip
    columns = ["task", "optimizer", "best_lr", "best", "n_lrs", "share_within"]
    return pd.DataFrame(out, columns=columns)


def performance_profile(
    runs: pd.DataFrame, metric: str, higher_is_better: bool = True,
    taus: Sequence[float] | None = None, *, phases: Sequence[str] | None = EVALUATION_PHASES,
) -> pd.DataFrame:  # fmt: skip
    """Dolan–Moré performance profiles across tasks: columns optimizer, tau, fraction.

    The cost of an optimizer on a task is its mean error, ``1 - metric`` when higher is
    better (so the metric must be accuracy-like, at most 1) and ``metric`` otherwise; its
    ratio is cost over the task's best cost. ``fraction`` is the share of tasks with
    ratio <= tau; an optimizer without a finished run on a task never counts there.
    ``taus`` defaults to every distinct finite ratio (the profile's steps).
    """
    rows = _evaluated(runs, [metric, "task", "optimizer"], phases)
    done = rows[(rows["status"] == "done") & rows[metric].notna()]
    mean = done.groupby(["task", "optimizer"])[metric].mean().unstack("optimizer")
    # Every task and optimizer seen, finished or not: a missing mean is an infinite ratio.
    tasks, optimizers = sorted(rows["task"].unique()), sorted(rows["optimizer"].unique())
    if not tasks or not optimizers:
        return pd.DataFrame(columns=["optimizer", "tau", "fraction"])
    mean = mean.reindex(index=tasks, columns=optimizers)
    cost = (1.0 - mean if higher_is_better else mean).to_numpy(float)
    if (cost < 0).any():
        hint = "an accuracy-like metric <= 1" if higher_is_better else "a non-negative metric"
        raise ValueError(f"performance_profile needs {hint}; {metric!r} gives negative costs")
    cost = np.where(np.isnan(cost), np.inf, cost)
    best = cost.min(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(cost == best, 1.0, cost / best)  # 0/0 at a perfect score is a tie
    if taus is None:
        taus = np.unique(np.append(ratio[np.isfinite(ratio)], 1.0))
    out = [
        {"optimizer": opt, "tau": float(tau), "fraction": float((ratio[:, j] <= tau).mean())}
        for j, opt in enumerate(mean.columns) for tau in taus
    ]  # fmt: skip
    return pd.DataFrame(out, columns=["optimizer", "tau", "fraction"])


def _ranked_lrs(table: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    # Best score first, then the smaller lr: the tie-break of the tuning protocol.
    return table.sort_values(
        ["task", "optimizer", "score", "lr"], ascending=[True, True, not higher_is_better, True]
    )


def _done_values(group: pd.DataFrame, metric: str) -> np.ndarray:
    values = group.loc[group["status"] == "done", metric].to_numpy(dtype=float)
    return values[~np.isnan(values)]


def _evaluated(
    runs: pd.DataFrame, columns: Sequence[str], phases: Sequence[str] | None
) -> pd.DataFrame:
    """Rows with status done or diverged (in ``phases``), after checking ``columns`` exist."""
    for name in ["status", *columns]:
        if name not in runs.columns:
            close = difflib.get_close_matches(name, [str(c) for c in runs.columns], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"the runs table has no column {name!r}{hint} "
                f"(columns: {', '.join(map(str, runs.columns))})"
            )
    rows = runs[runs["status"].isin(("done", "diverged"))]
    if phases is not None and "phase" in rows.columns:
        rows = rows[rows["phase"].isin(list(phases))]
    return rows
