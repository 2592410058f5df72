"""Statistics on hand-made runs tables, checked against hand computations and scipy."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gradretention.bench import stats
from gradretention.bench.results import RunConfig, RunResult
from gradretention.bench.store import ResultsStore

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


def test_summarize_counts_only_done_final_runs_and_gives_nan_ci_for_one_value() -> None:
    runs = pd.concat([_final_runs(), _runs(_row("spiral", "adam", 0.6))], ignore_index=True)
    table = stats.summarize(runs, "test_accuracy").set_index(["task", "optimizer"])
    assert list(table.columns) == ["n", "n_diverged", "mean", "std", "ci_low", "ci_high"]
    adam, hd, sgd = table.loc[("digits", "adam")], table.loc[("digits", HD)], table.loc[("digits", "sgd")]
    assert (adam["n"], adam["mean"], adam["std"]) == (3, pytest.approx(0.82), pytest.approx(0.02))
    assert (hd["n"], hd["n_diverged"], hd["mean"]) == (3, 1, pytest.approx(0.87))
    assert sgd["n"] == 3 and sgd["mean"] == pytest.approx(0.72)  # error and tune rows left out
    assert adam["ci_low"] < 0.82 < adam["ci_high"]
    lone = table.loc[("spiral", "adam")]
    assert lone["n"] == 1 and math.isnan(lone["std"]) and math.isnan(lone["ci_low"])


def test_holm_matches_a_hand_computed_example() -> None:
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(stats.holm([0.02, math.nan, 0.5]), [0.04, math.nan, 0.5])
    np.testing.assert_allclose(stats.holm([0.4, 0.3]), [0.6, 0.6])
    assert stats.holm([]).size == 0


def test_cohens_d_uses_the_pooled_sd() -> None:
    # Both samples have sample variance 0.0004: pooled sd 0.02, difference 0.05.
    assert stats.cohens_d([0.85, 0.87, 0.89], [0.80, 0.82, 0.84]) == pytest.approx(2.5)
    # Unequal sizes: ss = 2 + 0.5 = 2.5 over 3 dof; d = (2 - 0.5) / sqrt(2.5 / 3).
    assert stats.cohens_d([1, 2, 3], [0, 1]) == pytest.approx(1.5 / math.sqrt(2.5 / 3))
    assert math.isnan(stats.cohens_d([1, 1], [1, 1]))


def test_comparison_is_against_the_best_baseline_with_scipy_tests_and_holm() -> None:
    table = stats.compare_to_best_baseline(_final_runs(), "test_accuracy").set_index("optimizer")
    assert set(table.index) == {"sgd", HD} and set(table["baseline"]) == {"adam"}
    hd, sgd = table.loc[HD], table.loc["sgd"]
    adam_values, hd_values = [0.80, 0.82, 0.84], [0.85, 0.87, 0.89]
    welch = sps.ttest_ind(hd_values, adam_values, equal_var=False)
    mwu = sps.mannwhitneyu(hd_values, adam_values, alternative="two-sided")
    assert hd["welch_t"] == pytest.approx(welch.statistic)
    assert hd["welch_p"] == pytest.approx(welch.pvalue)
    assert (hd["mwu_u"], hd["mwu_p"]) == (pytest.approx(mwu.statistic), pytest.approx(mwu.pvalue))
    assert (hd["n"], hd["n_baseline"], hd["diff"]) == (3, 3, pytest.approx(0.05))
    assert hd["cohens_d"] == pytest.approx(2.5) and sgd["cohens_d"] == pytest.approx(-5.0)
    expected = stats.holm([hd["welch_p"], sgd["welch_p"]])
    assert [hd["welch_p_holm"], sgd["welch_p_holm"]] == pytest.approx(expected.tolist())
    assert hd["significant"] == (hd["welch_p_holm"] < 0.05)
    assert bool(sgd["significant"]) is True


def test_lower_is_better_picks_the_baseline_with_the_smallest_mean() -> None:
    runs = _final_runs().rename(columns={"test_accuracy": "test_loss"})
    table = stats.compare_to_best_baseline(runs, "test_loss", higher_is_better=False)
    assert set(table["baseline"]) == {"sgd"} and set(table["optimizer"]) == {"adam", HD}


def test_degenerate_samples_give_nan_p_values_without_warnings() -> None:
    runs = _runs(
        _row("t", "adam", 0.5), _row("t", "adam", 0.5),  # zero variance
        _row("t", "sgd", 0.4),                           # a single run
        _row("t", "rescaled_sgd", 0.5), _row("t", "rescaled_sgd", 0.5),
        _row("t", "adam_hd", 0.6), _row("t", "adam_hd", 0.6),
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = stats.compare_to_best_baseline(runs, "test_accuracy").set_index("optimizer")
    assert table["baseline"].unique().tolist() == ["adam"]
    assert table.loc["sgd", ["welch_p", "mwu_p", "welch_p_holm"]].isna().all()
    assert table.loc["rescaled_sgd", ["welch_t", "welch_p", "mwu_p"]].isna().all()
    assert math.isnan(table.loc["adam_hd", "welch_p"])  # both constant: t undefined ...
    assert table.loc["adam_hd", "mwu_p"] > 0  # ... but the ranks still separate them
    assert not table["significant"].any()


def test_a_task_without_baseline_runs_is_left_out() -> None:
    runs = _runs(_row("t", "adam_hd", 0.5), _row("t", "rescaled_sgd", 0.6))
    table = stats.compare_to_best_baseline(runs, "test_accuracy")
    assert table.empty and "welch_p_holm" in table.columns


def test_time_to_target_fraction_and_medians() -> None:
    rows = [
        _row("t", "sgd", 0.9, steps_to_target=100, seconds_to_target=1.0),
        _row("t", "sgd", 0.9, steps_to_target=300, seconds_to_target=3.0),
        _row("t", "sgd", 0.5, steps_to_target=None, seconds_to_target=None),
        _row("t", "sgd", 0.0, status="diverged", steps_to_target=None, seconds_to_target=None),
        _row("t", "sgd", 0.0, status="interrupted", steps_to_target=5, seconds_to_target=0.1),
        _row("t", "adam", 0.5, steps_to_target=None, seconds_to_target=None),
    ]
    table = stats.time_to_target(_runs(*rows)).set_index("optimizer")
    assert table.loc["sgd", ["n", "reached"]].tolist() == [4, 0.5]
    assert table.loc["sgd", "median_steps_to_target"] == 200
    assert table.loc["sgd", "median_seconds_to_target"] == 2.0
    assert table.loc["adam", "reached"] == 0 and math.isnan(table.loc["adam", "median_steps_to_target"])


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


def test_lr_sensitivity_share_counts_the_grid_within_tolerance_of_the_best() -> None:
    def share(tolerance: float) -> pd.Series:
        table = stats.lr_sensitivity_share(_tune_runs(), "val_accuracy", tolerance=tolerance)
        return table.set_index("optimizer").loc["sgd"]

    one_point = share(0.01)
    assert (one_point["best_lr"], one_point["best"], one_point["n_lrs"]) == (0.1, 0.9, 4)
    assert one_point["share_within"] == 0.5  # 1e-2 and 1e-1; 1.0 diverged on a seed
    assert share(0.005)["share_within"] == 0.5  # 0.90 - 0.895 is 0.005 up to rounding
    assert share(0.1)["share_within"] == 0.75
    assert share(0.0)["share_within"] == 0.25
    with pytest.raises(ValueError, match="tolerance must be >= 0, got -1"):
        stats.lr_sensitivity_share(_tune_runs(), "val_accuracy", tolerance=-1)


def _profile_runs() -> pd.DataFrame:
    # Errors (1 - accuracy), exact in binary: A: x .25, y .5, z .125; B: x .25, y .125, z diverged.
    return _runs(
        _row("A", "x", 0.75), _row("A", "y", 0.5), _row("A", "z", 0.875),
        _row("B", "x", 0.75), _row("B", "y", 0.875), _row("B", "z", 0.0, status="diverged"),
    )  # fmt: skip


def test_performance_profile_hand_example() -> None:
    # Ratios to the best: A: x 2, y 4, z 1; B: x 2, y 1, z never.
    profile = stats.performance_profile(_profile_runs(), "test_accuracy")
    assert sorted(profile["tau"].unique()) == [1.0, 2.0, 4.0]
    fractions = profile.pivot(index="optimizer", columns="tau", values="fraction")
    assert fractions.loc["x"].tolist() == [0.0, 1.0, 1.0]
    assert fractions.loc["y"].tolist() == [0.5, 0.5, 1.0]
    assert fractions.loc["z"].tolist() == [0.5, 0.5, 0.5]


def test_performance_profile_for_a_lower_is_better_metric_and_given_taus() -> None:
    runs = _profile_runs().assign(test_loss=lambda f: 1.0 - f["test_accuracy"])
    profile = stats.performance_profile(runs, "test_loss", higher_is_better=False, taus=[3.0])
    assert profile.set_index("optimizer")["fraction"].to_dict() == {"x": 1.0, "y": 0.5, "z": 0.5}
    with pytest.raises(ValueError, match="accuracy-like metric <= 1; 'test_accuracy' gives negative"):
        stats.performance_profile(runs.assign(test_accuracy=2.0), "test_accuracy")


def test_unknown_metric_names_the_column_and_suggests_one() -> None:
    with pytest.raises(ValueError, match="'test_acuracy'; did you mean 'test_accuracy'"):
        stats.summarize(_final_runs(), "test_acuracy")


def test_stats_read_the_frame_the_store_writes(tmp_path: Path) -> None:
    def result(optimizer: str, seed: int, accuracy: float, steps: int | None) -> RunResult:
        config = RunConfig(task="spiral", optimizer=optimizer, seed=seed, phase="final")
        return RunResult(config=config, status="done", final={"test_accuracy": accuracy},
                         steps_to_target=steps, seconds_to_target=steps and steps / 100)  # fmt: skip

    with ResultsStore(tmp_path) as store:
        for seed, (a, b) in enumerate([(0.80, 0.85), (0.82, 0.87), (0.84, 0.89)]):
            store.record(result("adam", seed, a, 50 + seed))
            store.record(result(HD, seed, b, None if seed else 30))
        runs = store.runs()
    summary = stats.summarize(runs, "test_accuracy").set_index("optimizer")
    assert summary.loc[HD, "mean"] == pytest.approx(0.87) and summary.loc["adam", "n"] == 3
    compared = stats.compare_to_best_baseline(runs, "test_accuracy")
    assert compared["cohens_d"].tolist() == pytest.approx([2.5])
    reach = stats.time_to_target(runs).set_index("optimizer")
    assert reach.loc["adam", "median_steps_to_target"] == 51
    assert reach.loc[HD, "reached"] == pytest.approx(1 / 3)


def test_performance_profile_of_no_finished_runs_is_empty_not_an_error():
    runs = pd.DataFrame({"task": ["t"], "optimizer": ["adam"], "status": ["diverged"], "phase": ["final"],
                         "test_accuracy": [float("nan")]}).iloc[0:0]
    profile = stats.performance_profile(runs, "test_accuracy")
    assert list(profile.columns) == ["optimizer", "tau", "fraction"] and profile.empty
