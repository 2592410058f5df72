"""Statistical primitives over the runs table (:meth:`ResultsStore.runs`).

The bootstrap interval and Holm's correction that the verdicts build on
(:mod:`gradretention.bench.analysis.verdicts`), and the lr ranking of the tuning phase
(a diverged seed makes an lr the worst). A baseline is an optimizer whose registry
name (before ``[``) is in :data:`BASELINES`. Degenerate samples give NaN, never a warning.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd


BASELINES: tuple[str, ...] = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
EVALUATION_PHASES: tuple[str, ...] = ("final", "single")
_NAN = float("nan")


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
