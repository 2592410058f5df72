"""The analysis side on hand-made numbers: verdicts, seeds, α flags, setups, sensitivity, targets."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gradretention.bench import stats
from gradretention.bench.analysis import alpha, caveats, claims, convergence, facts, protocol, sensitivity, verdicts
from gradretention.bench.analysis.analyse import analyse_runs
from gradretention.bench.analysis.setups import comparison_groups, setup_of

REF = [0.90, 0.91, 0.89, 0.90, 0.92]


def _table(**diffs: list[float]) -> pd.DataFrame:
    """Seeds × labels: the reference ``ref`` and ``ref + d`` per named label."""
    columns = {"ref": REF, **{name: [r + d for r, d in zip(REF, ds)] for name, ds in diffs.items()}}
    return pd.DataFrame(columns, index=pd.Index(range(100, 105), name="seed"))


def _config(epochs: int = 5, **extra: object) -> str:
    return json.dumps({"task": "t", "optimizer": "x", "seed": 0, "lr": 0.1, "phase": "final", "epochs": epochs,
                       "batch_size": 32, "data_seed": 0, "extra": [[k, v] for k, v in extra.items()]})


def _run(label: str, seed: int, test: float, *, val: float | None = None, status: str = "done",
         phase: str = "final", lr: float = 0.01, config: str | None = None, **more: object) -> dict:
    return {"run_id": f"{label}-{phase}-{seed}-{lr}-{config}", "task": "t", "optimizer": label,
            "optimizer_name": label.split("[")[0], "label": label, "lr": lr, "seed": seed, "data_seed": 0,
            "phase": phase, "status": status, "reason": "", "wall_seconds": 1.0, "config_json": config or _config(),
            "eval_json": json.dumps({"eval_samples_per_second": 359.0, "eval_runtime": 1.0}),
            "test_accuracy": test if status == "done" else math.nan,
            "val_accuracy": (test if val is None else val) if status == "done" else math.nan, **more}  # fmt: skip


def test_a_consistent_difference_inside_the_test_set_noise_is_a_tie() -> None:
    # d̄ = 0.02 with a tiny spread: p_t is tiny, but 1.96·SE_test on 359 examples is 0.044.
    frame = verdicts.compare(_table(a=[0.019, 0.021, 0.020, 0.020, 0.020]), "ref", "test_accuracy", n_test=359)
    row = frame.set_index("label").loc["a"]
    pooled = np.mean([*REF, *[r + d for r, d in zip(REF, [0.019, 0.021, 0.020, 0.020, 0.020])]])
    assert row["se_test"] == pytest.approx(math.sqrt(2 * pooled * (1 - pooled) / 359))
    assert row["p_holm"] < 1e-4 and row["noise_threshold"] > row["diff"] == pytest.approx(0.02)
    assert row["verdict"] == "tie" and "test-set noise" in row["why"]


def test_a_difference_beyond_ci_and_test_noise_is_a_win_with_the_hand_computed_ci() -> None:
    d = [0.019, 0.021, 0.020, 0.020, 0.025]
    row = verdicts.compare(_table(a=d), "ref", "test_accuracy", n_test=100_000).set_index("label").loc["a"]
    half = sps.t.ppf(0.975, 4) * np.std(d, ddof=1) / math.sqrt(5)
    assert (row["ci_t_low"], row["ci_t_high"]) == pytest.approx((np.mean(d) - half, np.mean(d) + half))
    assert row["p_t"] == pytest.approx(sps.ttest_rel(np.add(REF, d), REF).pvalue)
    assert row["ci_boot_low"] <= np.mean(d) <= row["ci_boot_high"]
    assert row["verdict"] == "better"
    worse = verdicts.compare(_table(a=[-x for x in d]), "ref", "test_accuracy", n_test=100_000)
    assert worse["verdict"].tolist() == ["worse"]
    loss = verdicts.compare(_table(a=d), "ref", "test_loss", n_test=100_000).iloc[0]
    assert loss["verdict"] == "worse" and math.isnan(loss["se_test"]) and "not an accuracy" in loss["why"]


def test_holm_over_the_group_turns_a_raw_p_below_alpha_into_a_tie() -> None:
    table = _table(a=[0.05, 0.06, 0.055, 0.052, 0.058], b=[0.02, 0.05, 0.0, 0.04, 0.03],
                   c=[0.03, -0.02, 0.05, 0.0, 0.04])  # fmt: skip
    frame = verdicts.compare(table, "ref", "test_accuracy", n_test=10**7).set_index("label")
    np.testing.assert_allclose(frame["p_holm"], stats.holm(frame["p_t"]))
    assert frame.loc["b", "p_t"] < 0.05 < frame.loc["b", "p_holm"]
    assert frame["verdict"].to_dict() == {"a": "better", "b": "tie", "c": "tie"}


def test_too_few_seeds_is_said_not_tested() -> None:
    three = _table(a=[0.05, 0.06, 0.07, math.nan, math.nan]).iloc[:3]
    row = verdicts.compare(three, "ref", "test_accuracy", n_test=10**7).iloc[0]
    assert row["wilcoxon_min_p"] == 0.25 and math.isnan(row["wilcoxon_p"])  # 2/2³ can never reach 0.05
    one = verdicts.compare(three.iloc[:1], "ref", "test_accuracy", n_test=10**7).iloc[0]
    assert one["verdict"] == "no test" and "too few seeds for this test" in one["why"]
    six = verdicts.compare(pd.concat([_table(a=[0.05] * 5), _table(a=[0.06] * 5).iloc[:1]]).reset_index(drop=True),
                           "ref", "test_accuracy", n_test=10**7).iloc[0]  # fmt: skip
    assert six["wilcoxon_min_p"] == pytest.approx(2 / 64) and six["wilcoxon_p"] == pytest.approx(2 / 64)


def test_a_diverged_seed_counts_at_chance_in_the_mean_and_the_difference() -> None:
    runs = pd.DataFrame([_run("adam", s, v) for s, v in enumerate(REF)]
                        + [_run("sgd", s, v) for s, v in enumerate(REF[:4])] + [_run("sgd", 4, 0, status="diverged")])
    table = verdicts.seed_table(runs, "test_accuracy", chance=0.1)
    assert table.loc[4, "sgd"] == 0.1
    summary = verdicts.label_summary(runs, "test_accuracy", chance=0.1).set_index("label")
    assert summary.loc["sgd", ["planned", "finished", "failed", "success_rate"]].tolist() == [5, 4, 1, 0.8]
    assert summary.loc["sgd", "mean"] == pytest.approx((sum(REF[:4]) + 0.1) / 5)
    row = verdicts.compare(table, "adam", "test_accuracy", 359).iloc[0]
    assert row["n"] == 5 and row["diff"] == pytest.approx((0.1 - REF[4]) / 5)


def test_the_reference_is_the_best_baseline_on_validation_not_on_test() -> None:
    runs = pd.DataFrame([_run("adam", s, 0.80, val=0.95) for s in range(3)]
                        + [_run("sgd", s, 0.90, val=0.85) for s in range(3)]
                        + [_run("adam_hd", s, 0.99, val=0.99) for s in range(3)])  # fmt: skip
    assert verdicts.reference_label(runs, "val_accuracy", chance=0.1) == "adam"
    analysis = analyse_runs(runs, pd.DataFrame(columns=["run_id", "step", "epoch", "split", "name", "group", "value"]))
    assert analysis[0].reference == "adam" and analysis[0].n_test == 359


def _lr_curve(run_id: str, values: list[float]) -> list[dict]:
    return [{"run_id": run_id, "step": 10 * i, "epoch": i / 2, "split": "opt", "name": "lr", "group": 0, "value": v}
            for i, v in enumerate(values)]  # fmt: skip


def test_alpha_inactive_and_negative_flags_on_crafted_runs() -> None:
    runs = pd.DataFrame([_run("adam_hd", 0, 0.9), _run("sgd_hd", 0, 0.9), _run("adam", 0, 0.9)])
    ids = runs["run_id"].tolist()
    curves = pd.DataFrame(_lr_curve(ids[0], [0.01, 0.01004, 0.01002]) + _lr_curve(ids[1], [0.1, 0.05, -0.02])
                          + _lr_curve(ids[2], [0.001, 0.001]))  # fmt: skip
    flags = alpha.run_flags(runs, curves).set_index("run_id")
    assert flags.loc[ids[0], "alpha_movement"] == pytest.approx(0.004)
    assert flags.loc[ids[1], "alpha_movement"] == pytest.approx(1.2) and flags.loc[ids[1], "alpha_negative"]
    assert flags.loc[ids[1], "alpha_min_ratio"] == pytest.approx(-0.2) and not flags.loc[ids[2], "adaptive"]
    counts = alpha.flag_counts(runs, flags.reset_index()).set_index("label")
    assert counts.loc["adam_hd", ["inactive", "negative"]].tolist() == [1, 0]
    assert counts.loc["sgd_hd", ["inactive", "negative"]].tolist() == [0, 1]
    assert "adam" not in counts.index  # a constant lr is no flag
    assert alpha.adapts_lr("sgd_hd[hypergrad_lr=0.001]") and alpha.adapts_lr("enhanced_sgd")
    assert not alpha.adapts_lr("rescaled_sgd")  # per-element rates under a fixed peak α
    assert not alpha.adapts_lr("adam") and not alpha.adapts_lr("prodigy")  # a peer adapts its d, not its lr
    recorded = runs.assign(alpha_movement=[0.5, 0.002, 0.0], alpha_min_ratio=[1.0, 0.9, 1.0], alpha_negative=[1.0, 0, 0])
    from_columns = alpha.run_flags(recorded, curves.iloc[:0]).set_index("run_id")
    assert from_columns.loc[ids[0], "alpha_negative"] and from_columns.loc[ids[1], "alpha_movement"] == 0.002


def test_runs_of_different_setups_are_kept_in_separate_groups() -> None:
    same = [_run("adam", 0, 0.9, config=_config(5)), _run("adam", 1, 0.9, lr=0.1, phase="tune",
            config=_config(5, trial=3)), _run("sgd", 0, 0.8, config=_config(5))]  # fmt: skip
    other = [_run("adam", 0, 0.7, config=_config(20)), _run("adam", 0, 0.6, phase="single", config=_config(5))]
    groups = comparison_groups(pd.DataFrame(same + other))
    assert [(g.title, len(g.runs)) for g in groups] == [("t · setup 1", 3), ("t · setup 2", 1),
                                                         ("t · setup 3 (untuned runs)", 1)]  # fmt: skip
    assert dict(groups[1].setup)["epochs"] == 20 and dict(groups[0].setup)["epochs"] == 5
    assert "trial" not in dict(groups[0].setup) and "seed" not in dict(groups[0].setup)
    varied = json.dumps({**json.loads(_config(5, trial=9)), "label": "mine", "optimizer": "adam[lr=1]", "seed": 7})
    assert setup_of(varied) == setup_of(_config(5)) != setup_of(_config(5, eval_every=2))
    with pytest.raises(ValueError, match="run r7: config_json is not valid JSON"):
        setup_of("{epochs: 5", "r7")


def test_sensitivity_width_in_decades_and_its_ci_on_a_crafted_grid() -> None:
    lrs = [1e-3, 10**-2.5, 1e-2, 10**-1.5, 1e-1, 10**-0.5]
    # Means: 0.60, 0.85, 0.89, 0.90, 0.893, 0.70: within one point of 0.90 from 1e-2 to 1e-1.
    seeds = {0: [0.60, 0.85, 0.88, 0.90, 0.893, 0.70], 1: [0.60, 0.85, 0.90, 0.90, 0.893, 0.70]}
    runs = pd.DataFrame([_run("adam", s, v, phase="tune", lr=lr) for s, values in seeds.items()
                         for lr, v in zip(lrs, values)])  # fmt: skip
    grid = sensitivity.grid_scores(runs, "val_accuracy", chance=0.1)
    row = sensitivity.summary(grid, "val_accuracy", n_resamples=500, seed=1).iloc[0]
    assert row["width"] == pytest.approx(1.0) and row["best_lr"] == pytest.approx(10**-1.5)
    # Resampling seed 0 twice drops 1e-2 (0.88 < 0.90 - 0.01): width 0.5; seed 1 twice keeps it.
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.5, 1.0))
    assert sensitivity.width_decades(np.array(lrs), np.array([0.5, 0.9, 0.2, 0.9, 0.2, 0.2])) == 0.0
    diverged = runs.assign(status=np.where(runs["lr"] == 1e-3, "diverged", "done"))
    assert sensitivity.grid_scores(diverged, "val_accuracy", 0.1).query("lr == 0.001")["value"].eq(0.1).all()


def test_steps_to_target_reports_k_of_n_with_failed_seeds_counted() -> None:
    runs = pd.DataFrame([_run("adam", 0, 0.9, steps_to_target=100, seconds_to_target=1.0),
                         _run("adam", 1, 0.9, steps_to_target=300, seconds_to_target=3.0),
                         _run("adam", 2, 0.9, steps_to_target=None, seconds_to_target=None),
                         _run("adam", 3, 0.0, status="diverged", steps_to_target=None, seconds_to_target=None)])
    row = convergence.time_to_target(runs, "t").iloc[0]
    assert (row["reached"], row["n"], row["median_steps"], row["median_seconds"]) == (2, 4, 200, 2.0)
    assert row["target"] == "validation target not recorded"


def test_best_so_far_starts_at_the_mean_trial_and_ends_at_the_best() -> None:
    scores = pd.DataFrame({"label": "adam", "trial": range(4), "score": [0.2, 0.9, 0.5, 0.6]})
    curve = convergence.best_so_far(scores, "val_accuracy", orderings=4000, seed=0)
    assert curve["mean"].iloc[0] == pytest.approx(0.55, abs=0.02) and curve["mean"].iloc[-1] == pytest.approx(0.9)
    assert (np.diff(curve["mean"]) >= 0).all() and (curve["low"] <= curve["high"]).all()
    assert convergence.trial_number(_config(trial=7)) == 7 and convergence.trial_number(_config()) is None


def test_each_method_is_paired_with_the_baseline_rule_it_modifies() -> None:
    expected = {"sgd_hd": "sgd", "sgdn_hd_adam": "nesterov", "adam_hd_sgdn": "adam", "adam_var": "adam",
                "rescaled_sgd": "sgd", "enhanced_sgd": "momentum", "enhanced_sgd_spec": "momentum",
                "rmsprop_hd": "rmsprop", "adam": None}
    assert {name: claims.base_rule(name) for name in expected} == expected
    runs = pd.DataFrame([_run(name, 0, 0.9) for name in ("sgd", "sgd_hd", "adam_hd", "rescaled_sgd", "momentum")])
    assert claims.claim_pairs(runs) == [("rescaled_sgd", "sgd"), ("sgd_hd", "sgd")]  # adam did not run


def test_width_difference_is_paired_over_tuning_seeds() -> None:
    lrs = [1e-3, 10**-2.5, 1e-2, 10**-1.5]
    wide = {0: [0.90, 0.90, 0.90, 0.50], 1: [0.90, 0.90, 0.90, 0.50]}  # 1 decade on every seed
    narrow = {0: [0.50, 0.90, 0.50, 0.50], 1: [0.50, 0.90, 0.89, 0.50]}  # 0 on seed 0 and pooled, 0.5 on seed 1
    runs = pd.DataFrame([_run(name, s, v, phase="tune", lr=lr) for name, grid in (("hd", wide), ("base", narrow))
                         for s, values in grid.items() for lr, v in zip(lrs, values)])  # fmt: skip
    grid = sensitivity.grid_scores(runs, "val_accuracy", 0.1)
    diff, low, high = sensitivity.width_difference(grid, "hd", "base", "val_accuracy", n_resamples=400)
    assert diff == pytest.approx(1.0) and (low, high) == pytest.approx((0.5, 1.0))


def test_steps_ratio_is_the_geometric_mean_over_seeds_both_reached() -> None:
    runs = pd.DataFrame([_run("a", 0, 0.9, steps_to_target=50), _run("b", 0, 0.9, steps_to_target=100),
                         _run("a", 1, 0.9, steps_to_target=200), _run("b", 1, 0.9, steps_to_target=100),
                         _run("a", 2, 0.9, steps_to_target=10), _run("b", 2, 0.9, steps_to_target=None)])  # fmt: skip
    ratio, low, high, n = convergence.steps_ratio(runs, "a", "b", "steps_to_target")
    assert n == 2 and ratio == pytest.approx(1.0)  # √(0.5 · 2)
    assert low == pytest.approx(0.5) and high == pytest.approx(2.0)


def test_protocol_text_says_how_each_setting_was_chosen() -> None:
    selections = pd.DataFrame([
        {"task": "t", "label": "adam", "protocol": "grid", "chosen_spec": "adam", "chosen_lr": 0.01, "score": 0.9,
         "tuning_seeds": "[0, 1, 2]", "final_seeds": "[100, 101, 102, 103, 104]", "grid": "[0.001, 0.01, 0.1]",
         "edge": "", "stop_reason": "", "trials": 0},
        {"task": "t", "label": "prodigy", "protocol": "fixed", "chosen_spec": "prodigy", "chosen_lr": 1.0,
         "score": 0.8, "tuning_seeds": "[]", "final_seeds": "[100, 101, 102, 103, 104]", "grid": "[]", "edge": "",
         "stop_reason": "learning-rate-free: runs at lr = 1", "trials": 0}])  # fmt: skip
    runs = pd.DataFrame([_run("adam", 100, 0.9), _run("prodigy", 100, 0.8)])
    text = protocol.protocol_text(runs, selections, "tuned", "val_accuracy")
    assert "Grid protocol (adam): one shared absolute log grid of lrs (0.001 … 0.1, 3 points" in text
    assert "tuning seeds 0–2 (3)" in text and "Final seeds 100–104 (5), disjoint from the tuning seeds" in text
    assert "Fixed, not tuned (prodigy): learning-rate-free: runs at lr = 1." in text
    rows = protocol.selection_rows(selections, str)
    assert rows[1][-1] == "learning-rate-free: runs at lr = 1" and rows[0][-1] == "interior"
    untuned = protocol.protocol_text(runs, selections.iloc[:0], "untuned", "val_accuracy")
    assert untuned.startswith("Untuned runs: each optimizer ran at its configured lr (seeds 100 (1))")


def test_a_final_seed_never_run_counts_as_planned_and_unfinished() -> None:
    runs = pd.DataFrame([_run("adam", s, 0.9) for s in (100, 101, 102)] + [_run("sgd", s, 0.8) for s in range(100, 105)])
    selections = pd.DataFrame([{"task": "t", "label": name, "protocol": "grid", "chosen_spec": name, "chosen_lr": 0.01,
                                "score": 0.9, "tuning_seeds": "[0, 1, 2]", "final_seeds": "[100, 101, 102, 103, 104]",
                                "grid": "[0.01]", "edge": "", "stop_reason": "", "trials": 0} for name in ("adam", "sgd")])
    empty = pd.DataFrame(columns=["run_id", "step", "epoch", "split", "name", "group", "value"])
    (analysis,) = analyse_runs(runs, empty, selections)
    assert analysis.summary.set_index("label").loc["adam", ["planned", "finished", "success_rate"]].tolist() == [5, 3, 0.6]
    assert "adam: 2 of 5 final seeds unfinished (interrupted or missing)" in " ".join(analysis.caveats)


def test_the_chance_level_is_the_recorded_one_else_derived_and_stated() -> None:
    runs = pd.DataFrame([_run("adam", 0, 0.9, chance=0.25), _run("adam", 1, 0.0, status="diverged", chance=0.25)])
    assert facts.chance_level("t", "test_accuracy", runs)[0] == 0.25
    assert facts.chance_level("t", "test_accuracy", runs.drop(columns=["chance"])) == (0.0, "0, the worst score")
    assert facts.chance_level("spiral", "test_accuracy", runs.drop(columns=["chance"]))[0] == pytest.approx(1 / 3)
    assert facts.test_set_size(runs) == 359  # from the test evaluation's throughput × runtime


def test_labels_without_any_score_are_left_out_not_an_error() -> None:
    grid = pd.DataFrame({"label": ["a", "a", "b"], "lr": [0.1, 1.0, 0.1], "seed": [0, 0, 0],
                         "value": [math.nan, math.nan, 0.5]})  # fmt: skip
    assert sensitivity.summary(grid, "val_accuracy")["label"].tolist() == ["b"]
    trials = pd.DataFrame({"label": ["a", "a", "b"], "trial": [0, 1, 0], "score": [math.nan, 0.5, math.nan]})
    curve = convergence.best_so_far(trials, "val_accuracy")
    assert curve[["label", "trials", "mean"]].values.tolist() == [["a", 1, 0.5]]


def test_alpha_is_the_effective_step_size_the_telemetry_logs() -> None:
    # EnhancedSGD steps with lr · lr_scale and never rewrites group["lr"]: its tracked columns say 0.
    runs = pd.DataFrame([_run("enhanced_sgd", 0, 0.9, alpha_movement=0.0, alpha_min_ratio=1.0, alpha_negative=0.0)])
    rid = runs["run_id"].iloc[0]
    curves = pd.DataFrame(_lr_curve(rid, [0.1, 0.1, 0.1]) + [
        {"run_id": rid, "step": 10 * i, "epoch": i / 2, "split": "opt", "name": "lr/g0", "group": None, "value": v}
        for i, v in enumerate([0.1, 0.5, 1.0])])  # fmt: skip
    flags = alpha.run_flags(runs, curves).iloc[0]
    assert flags["alpha_movement"] == pytest.approx(9.0) and flags["adaptive"]
    assert alpha.lr_points(curves)["value"].tolist() == [0.1, 0.5, 1.0]  # the figure draws the same α


def test_a_label_whose_runs_recorded_different_settings_gets_a_caveat_naming_the_keys() -> None:
    def settings(eps: float, lr: float) -> str:
        return json.dumps({"betas": [0.9, 0.999], "eps": eps, "lr": lr}, sort_keys=True)

    runs = pd.DataFrame([_run("adam", 0, 0.9, lr=0.1, optimizer_settings=settings(1e-8, 0.1)),
                         _run("adam", 1, 0.9, lr=0.01, optimizer_settings=settings(1e-8, 0.01)),  # lr alone: same
                         _run("sgd", 0, 0.9, optimizer_settings=None),  # recorded before settings were kept
                         _run("sgd", 1, 0.9, optimizer_settings="unknown")])  # fmt: skip
    assert caveats.settings_caveats(runs) == []
    runs.loc[1, "optimizer_settings"] = settings(1e-3, 0.01)
    (note,) = caveats.settings_caveats(runs)
    assert note.startswith("adam: its runs were trained under 2 different optimizer settings (differing in eps)")
    assert caveats.settings_caveats(runs.drop(columns="optimizer_settings")) == []
