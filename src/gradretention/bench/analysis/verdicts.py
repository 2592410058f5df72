"""Paired comparisons against a task's reference baseline, built not to overclaim.

For optimizer A against the reference B on the seeds both ran (a failed seed counts at
the chance level, see :func:`gradretention.bench.analysis.facts.chance_level`):

    d_s = metric_A(s) − metric_B(s),   d̄ = mean_s d_s,   SE = sd(d) / √n
    CI_t    = d̄ ± t_{0.975, n−1} · SE                 (paired t; p_t its two-sided p)
    CI_boot = percentile bootstrap of d̄ over seeds     (10 000 resamples, seeded)
    SE_test = √(2 · p̄(1 − p̄) / n_test)                (accuracies only; p̄ pooled)

The verdict is ``better`` / ``worse`` only where the Holm-adjusted p_t (over the
optimizers compared in the group) is below α — i.e. the Holm-corrected CI_t excludes 0 —
**and** |d̄| > 1.96 · SE_test; otherwise ``tie``. Fewer than two shared seeds is no test.
Beside it, the exact Wilcoxon signed-rank p is given only where its smallest attainable
p (2 / 2ⁿ) can reach the strictest Holm level α / m; otherwise "too few seeds for this test".

The reference is the baseline with the best mean *validation* score, never test.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from gradretention.bench.analysis.facts import higher_is_better, is_accuracy
from gradretention.bench.stats import BASELINES, bootstrap_ci, holm

FAILED = ("diverged", "error")
COMPARISON_COLUMNS = (
    "label", "reference", "n", "diff", "sd", "ci_t_low", "ci_t_high", "ci_boot_low", "ci_boot_high",
    "p_t", "p_holm", "wilcoxon_p", "wilcoxon_min_p", "se_test", "noise_threshold", "verdict", "why",
)  # fmt: skip


@dataclass(frozen=True)
class Rules:
    """The thresholds of a verdict: family-wise α, the SE_test multiplier, the bootstrap."""

    alpha: float = 0.05
    z: float = 1.96
    n_resamples: int = 10_000
    seed: int = 0


DEFAULT_RULES = Rules()


def seed_table(runs: pd.DataFrame, metric: str, chance: float) -> pd.DataFrame:
    """Seeds × labels of ``metric``: finished seeds' values, failed seeds at ``chance``.

    Interrupted runs and missing seeds stay NaN: they were never finished, so they are
    neither a result nor a failure of the optimizer (a resumed sweep reruns them).
    """
    rows = runs.assign(value=pd.to_numeric(runs[metric], errors="coerce") if metric in runs else np.nan)
    done_bad = (rows["status"] == "done") & ~np.isfinite(rows["value"])
    rows.loc[rows["status"].isin(FAILED) | done_bad, "value"] = chance
    rows = rows[rows["status"].isin(("done", *FAILED))]
    return rows.pivot_table(index="seed", columns="label", values="value", aggfunc="mean", dropna=False)


def label_summary(runs: pd.DataFrame, metric: str, chance: float) -> pd.DataFrame:
    """Per label: planned seeds, finished, failed, success rate, mean and sd with failures at chance."""
    table = seed_table(runs, metric, chance)
    out = []
    for label, group in runs.groupby("label", sort=True):
        values = table[label].dropna().to_numpy(float) if label in table else np.array([])
        out.append({
            "label": label, "planned": group["seed"].nunique(),
            "finished": int((group["status"] == "done").sum()),
            "failed": int(group["status"].isin(FAILED).sum()),
            "mean": values.mean() if values.size else math.nan,
            "sd": values.std(ddof=1) if values.size > 1 else math.nan,
        })  # fmt: skip
    frame = pd.DataFrame(out, columns=["label", "planned", "finished", "failed", "mean", "sd"])
    frame["success_rate"] = frame["finished"] / frame["planned"].where(frame["planned"] > 0)
    return frame


def reference_label(runs: pd.DataFrame, val_metric: str, chance: float) -> str | None:
    """The baseline with the best mean validation score (failures at chance); ties: first label.

    ``None`` when the group holds no baseline (:data:`BASELINES`) run.
    """
    names = runs.drop_duplicates("label").set_index("label")["optimizer_name"].astype(str)
    base = names[names.map(lambda name: name.split("[", 1)[0] in BASELINES)].index
    if len(base) == 0 or val_metric not in runs.columns:
        return None
    means = seed_table(runs[runs["label"].isin(base)], val_metric, chance).mean()
    means = means.dropna()
    if means.empty:
        return None
    # Rounded: means equal up to float noise are a tie, which goes to the first label.
    signed = (means if higher_is_better(val_metric) else -means).round(12)
    return str(signed.sort_index().idxmax())


def compare(table: pd.DataFrame, reference: str, metric: str, n_test: int | None, rules: Rules = DEFAULT_RULES) -> pd.DataFrame:
    """Every other label of ``table`` (seeds × labels, :func:`seed_table`) against ``reference``.

    Returns:
        One row per label with :data:`COMPARISON_COLUMNS`; ``diff`` is label minus
        reference whatever the metric's direction.
    """
    pairs = [(label, reference) for label in table.columns if label != reference]
    return compare_pairs(table, pairs, metric, n_test, rules)


def compare_pairs(
    table: pd.DataFrame, pairs: list[tuple[str, str]], metric: str, n_test: int | None, rules: Rules = DEFAULT_RULES
) -> pd.DataFrame:
    """Paired comparisons ``(label, reference)`` of ``table``'s columns, Holm over the family ``pairs``."""
    rows = [_paired(label, ref, table[[label, ref]].dropna(), metric, n_test, rules) for label, ref in pairs]
    frame = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    if frame.empty:
        return frame
    frame["p_holm"] = holm(frame["p_t"])
    strictest = rules.alpha / max(int(frame["p_t"].notna().sum()), 1)
    too_few = frame["wilcoxon_min_p"] > strictest
    frame.loc[too_few, "wilcoxon_p"] = math.nan
    for index, row in frame.iterrows():
        frame.loc[index, ["verdict", "why"]] = _verdict(row, metric, rules)
    return frame


def _paired(label: str, reference: str, pair: pd.DataFrame, metric: str, n_test: int | None, rules: Rules) -> dict:
    d = (pair[label] - pair[reference]).to_numpy(float)
    n = d.size
    row: dict[str, object] = dict.fromkeys(COMPARISON_COLUMNS, math.nan)
    row.update(label=label, reference=reference, n=n, verdict="", why="")
    if n == 0:
        return row
    row["diff"] = float(d.mean())
    row["se_test"] = _se_test(pair.to_numpy(float), metric, n_test)
    row["noise_threshold"] = rules.z * row["se_test"] if not math.isnan(row["se_test"]) else math.nan
    if n < 2:
        return row
    sd = float(d.std(ddof=1))
    row["sd"] = sd
    half = sps.t.ppf(1 - rules.alpha / 2, n - 1) * sd / math.sqrt(n)
    row["ci_t_low"], row["ci_t_high"] = d.mean() - half, d.mean() + half
    row["ci_boot_low"], row["ci_boot_high"] = bootstrap_ci(d, 1 - rules.alpha, rules.n_resamples, rules.seed)
    if sd == 0:
        row["p_t"] = 1.0 if d.mean() == 0 else 0.0  # a constant difference: t is ±inf or undefined
    else:
        row["p_t"] = float(sps.ttest_1samp(d, 0.0).pvalue)
    row["wilcoxon_min_p"] = 2.0 / 2**n
    if np.any(d != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exact distribution with zeros: scipy notes it, the p stands
            row["wilcoxon_p"] = float(sps.wilcoxon(d, zero_method="zsplit").pvalue)
    else:
        row["wilcoxon_p"] = 1.0
    return row


def _se_test(values: np.ndarray, metric: str, n_test: int | None) -> float:
    if not is_accuracy(metric) or not n_test:
        return math.nan
    pooled = float(np.clip(values.mean(), 0.0, 1.0))
    return math.sqrt(2.0 * pooled * (1.0 - pooled) / n_test)


def _verdict(row: pd.Series, metric: str, rules: Rules) -> tuple[str, str]:
    if row["n"] < 2:
        return "no test", f"too few seeds for this test: {int(row['n'])} shared seed(s), a paired test needs 2"
    if not row["p_t"] < rules.alpha:
        return "tie", f"the 95 % CI of the difference includes 0 (p = {row['p_t']:.3g})"
    if not row["p_holm"] < rules.alpha:
        return "tie", f"not significant after Holm over the group (p = {row['p_holm']:.3g})"
    if is_accuracy(metric):
        if math.isnan(row["noise_threshold"]):
            return "tie", "test-set size not recorded: the test-set sampling error cannot be ruled out"
        if abs(row["diff"]) <= row["noise_threshold"]:
            return "tie", (f"|d̄| = {abs(row['diff']):.4f} is within the test-set noise "
                           f"1.96·SE_test = {row['noise_threshold']:.4f}")  # fmt: skip
    better = (row["diff"] > 0) == higher_is_better(metric)
    return ("better" if better else "worse"), "CI excludes 0 after Holm" + (
        " and |d̄| exceeds 1.96·SE_test" if is_accuracy(metric) else " (no SE_test term: not an accuracy)")
