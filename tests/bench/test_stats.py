"""Statistical primitives on hand-made runs tables, checked against hand computations and scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gradretention.bench import stats

HD = "adam_hd[hypergrad_lr=1e-08]"


def _row(task: str, optimizer: str, value: float, status: str = "done", **extra: object) -> dict:
    row = {"run_id": f"{task}-{optimizer}-{value}-{len(extra)}", "task": task,
           "optimizer": optimizer, "status": status, "phase": "final",
           "test_accuracy": math.nan if status == "diverged" else value}  # fmt: skip
    return {**row, **extra}


def _runs(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def _final_runs() -> pd.DataFrame:
    """Task 'digits': adam 0.80/0.82/0.84, sgd 0.70/0.72/0.74, adam_hd 0.85/0.87/0.89 + diverged."""
    rows = [_row("digits", "adam", v) for v in (0.80, 0.82, 0.84)]
    rows += [_row("digits", "sgd", v) for v in (0.70, 0.72, 0.74)]
    rows += [_row("digits", HD, v) for v in (0.85, 0.87, 0.89)]
    rows += [_row("digits", HD, 0.0, status="diverged"), _row("digits", "sgd", 0.1, status="error")]
    rows += [_row("digits", "sgd", 0.99, phase="tune")]  # tuning runs are not results
    return _runs(*rows)


def test_bootstrap_ci_contains_the_mean_and_is_seeded() -> None:
    values = np.random.default_rng(1).normal(0.9, 0.02, size=12)
    low, high = stats.bootstrap_ci(values, seed=3)
    assert low < np.mean(values) < high
    assert stats.bootstrap_ci(values, seed=3) == (low, high)
    assert stats.bootstrap_ci(values, seed=4) != (low, high)


def test_bootstrap_ci_is_close_to_the_t_interval_for_normal_data() -> None:
    values = np.random.default_rng(0).normal(0.8, 0.05, size=40)
    low, high = stats.bootstrap_ci(values)
    t_low, t_high = sps.t.interval(0.95, df=39, loc=values.mean(), scale=sps.sem(values))
    assert (high - low) == pytest.approx(t_high - t_low, rel=0.15)


def test_holm_matches_a_hand_computed_example() -> None:
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(stats.holm([0.02, math.nan, 0.5]), [0.04, math.nan, 0.5])
    np.testing.assert_allclose(stats.holm([0.4, 0.3]), [0.6, 0.6])
    assert stats.holm([]).size == 0


def _tune_runs() -> pd.DataFrame:
    """sgd val means per lr: 1e-3 -> 0.80, 1e-2 -> 0.895, 1e-1 -> 0.90, 1.0 -> 0.95 + a diverged seed.

    adam ties at 0.90 for lr 1e-2 and 1e-3.
    """
    grid = {1e-3: (0.79, 0.81), 1e-2: (0.89, 0.90), 1e-1: (0.90, 0.90), 1.0: (0.95, None)}
    rows = []
    for lr, values in grid.items():
        for seed, value in enumerate(values):
            rows.append({"run_id": f"sgd-{lr}-{seed}", "task": "t", "optimizer": "sgd", "lr": lr,
                         "seed": seed, "phase": "tune", "status": "done" if value else "diverged",
                         "val_accuracy": value if value else math.nan})  # fmt: skip
    for lr in (1e-2, 1e-3):
        rows.append({"run_id": f"adam-{lr}", "task": "t", "optimizer": "adam", "lr": lr, "seed": 0,
                     "phase": "tune", "status": "done", "val_accuracy": 0.9})  # fmt: skip
    rows.append({**rows[0], "run_id": "final", "phase": "final", "val_accuracy": 0.1})
    return _runs(*rows)


def test_lr_sensitivity_means_over_seeds_with_diverged_as_worst_score() -> None:
    table = stats.lr_sensitivity(_tune_runs(), "val_accuracy")
    sgd = table[table["optimizer"] == "sgd"].set_index("lr")
    assert sgd["mean"].tolist() == pytest.approx([0.80, 0.895, 0.90, 0.95])
    assert sgd["n"].tolist() == [2, 2, 2, 1] and sgd["n_diverged"].tolist() == [0, 0, 0, 1]
    assert sgd.loc[1.0, "score"] == -math.inf and sgd.loc[0.1, "score"] == pytest.approx(0.90)


def test_best_lr_skips_lrs_that_diverged_and_breaks_ties_towards_the_smaller_lr() -> None:
    best = stats.best_lr_per_optimizer(_tune_runs())
    assert best == {("t", "sgd"): 0.1, ("t", "adam"): 1e-3}
    loss = _tune_runs().assign(val_loss=lambda f: 1.0 - f["val_accuracy"])
    assert stats.best_lr_per_optimizer(loss, "val_loss", higher_is_better=False)[("t", "sgd")] == 0.1
    only_tune_rows_count = stats.best_lr_per_optimizer(_final_runs().assign(lr=0.1), "test_accuracy")
    assert only_tune_rows_count == {("digits", "sgd"): 0.1}


def test_unknown_metric_names_the_column_and_suggests_one() -> None:
    with pytest.raises(ValueError, match="'test_acuracy'; did you mean 'test_accuracy'"):
        stats.lr_sensitivity(_final_runs().assign(lr=0.1), "test_acuracy")


