"""Everything the report and the terminal table say about one comparison group, computed once.

Example:
    >>> analyses = analyse_runs(runs, curves, selections)  # doctest: +SKIP
    >>> analyses[0].comparisons[["label", "diff", "verdict"]]
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gradretention.bench.analysis import alpha, caveats, claims, convergence, facts, protocol, sensitivity, verdicts
from gradretention.bench.analysis.setups import ComparisonGroup, comparison_groups

EVALUATION_PHASES = ("final", "single")


@dataclass(frozen=True)
class GroupAnalysis:
    """One group's numbers: who was compared on what, with which verdicts and caveats."""

    group: ComparisonGroup
    metric: str
    val_metric: str
    chance: float
    chance_how: str
    n_test: int | None
    reference: str | None
    summary: pd.DataFrame = field(repr=False)
    seeds: pd.DataFrame = field(repr=False)
    comparisons: pd.DataFrame = field(repr=False)
    grid: pd.DataFrame = field(repr=False)
    sensitivity: pd.DataFrame = field(repr=False)
    targets: pd.DataFrame = field(repr=False)
    trials: pd.DataFrame = field(repr=False)
    best_so_far: pd.DataFrame = field(repr=False)
    alpha_counts: pd.DataFrame = field(repr=False)
    claims: pd.DataFrame = field(repr=False)
    selections: pd.DataFrame = field(repr=False)
    protocol: str = ""
    tuning_cost: str = ""
    caveats: tuple[str, ...] = ()

    @property
    def reported(self) -> pd.DataFrame:
        """The group's evaluation runs (final reruns, or single runs), whose test numbers are reported."""
        runs = self.group.runs
        return runs[runs["phase"].isin(EVALUATION_PHASES)]


def analyse_runs(
    runs: pd.DataFrame, curves: pd.DataFrame, selections: pd.DataFrame | None = None, metric: str | None = None,
    rules: verdicts.Rules = verdicts.DEFAULT_RULES,
) -> list[GroupAnalysis]:  # fmt: skip
    """:func:`analyse_group` for every comparison group of ``runs``."""
    metrics = facts.primary_metrics(runs, metric) if len(runs) else {}
    flags = alpha.run_flags(runs, curves) if len(runs) else pd.DataFrame(columns=list(alpha.FLAG_COLUMNS))
    return [analyse_group(group, metrics[group.task], flags, selections, rules)
            for group in comparison_groups(runs) if group.task in metrics]  # fmt: skip


def analyse_group(
    group: ComparisonGroup, metric: str, flags: pd.DataFrame, selections: pd.DataFrame | None,
    rules: verdicts.Rules = verdicts.DEFAULT_RULES,
) -> GroupAnalysis:  # fmt: skip
    """Verdicts, sensitivity, targets, budget curves, α counts, protocol and caveats of one group."""
    runs = group.runs
    val = facts.validation_metric(runs, metric)
    reported = runs[runs["phase"].isin(EVALUATION_PHASES)]
    tune = runs[runs["phase"] == "tune"]
    chance, how = _chance(group.task, metric, reported)
    val_chance = _chance(group.task, val, runs)[0]
    seeds = verdicts.seed_table(reported, metric, chance) if len(reported) else pd.DataFrame()
    reference = verdicts.reference_label(reported, val, val_chance) if len(reported) else None
    n_test = facts.test_set_size(reported)
    comparisons = verdicts.compare(seeds, reference, metric, n_test, rules) if reference else pd.DataFrame(
        columns=list(verdicts.COMPARISON_COLUMNS))  # fmt: skip
    chosen = protocol.group_selections(selections, group.task, sorted(runs["label"].unique()))
    summary = _planned(_summary(reported, metric, val, chance, val_chance), chosen)
    grid = sensitivity.grid_scores(tune, val, val_chance)
    trials = convergence.trial_scores(tune, val, val_chance)
    counts = alpha.flag_counts(reported, flags)
    notes = [*caveats.edge_caveats(chosen, protocol.inferred_edges(runs) if chosen.empty else {}),
             *caveats.seed_caveats(summary, comparisons), *caveats.alpha_caveats(counts),
             *(caveats.identical_caveats(seeds) if len(seeds) else []), *caveats.settings_caveats(runs)]  # fmt: skip
    return GroupAnalysis(
        group=group, metric=metric, val_metric=val, chance=chance, chance_how=how, n_test=n_test,
        reference=reference, summary=summary, seeds=seeds, comparisons=comparisons, grid=grid,
        sensitivity=sensitivity.summary(grid, val) if len(grid) else pd.DataFrame(columns=list(sensitivity.SUMMARY_COLUMNS)),
        targets=convergence.time_to_target(reported, group.task), trials=trials,
        best_so_far=convergence.best_so_far(trials, val) if len(trials) else pd.DataFrame(),
        alpha_counts=counts, selections=chosen,
        claims=claims.claims(runs, seeds, grid, metric, val, n_test, rules), protocol=protocol.protocol_text(runs, chosen, group.kind, val),
        tuning_cost=convergence.tuning_cost(tune) if len(tune) else "",
        caveats=tuple(notes),
    )  # fmt: skip


def verdict_table(analyses: list[GroupAnalysis]) -> pd.DataFrame:
    """One tidy row per (group, optimizer): summary, paired comparison and verdict, for export."""
    parts = []
    for analysis in analyses:
        rows = analysis.summary.merge(analysis.comparisons.drop(columns=["sd"], errors="ignore"), on="label", how="left")
        rows.loc[rows["label"] == analysis.reference, "verdict"] = "reference"
        parts.append(rows.assign(group=analysis.group.title, task=analysis.group.task, metric=analysis.metric,
                                 setup=json.dumps(dict(analysis.group.setup), sort_keys=True, default=str),
                                 reference=analysis.reference, n_test=analysis.n_test))  # fmt: skip
    columns = ["group", "task", "metric", "setup", "reference", "n_test", "label"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def sensitivity_table(analyses: list[GroupAnalysis]) -> pd.DataFrame:
    """One tidy row per (group, optimizer) of the lr-sensitivity summary, for export."""
    parts = [a.sensitivity.assign(group=a.group.title, task=a.group.task, metric=a.val_metric)
             for a in analyses if len(a.sensitivity)]  # fmt: skip
    columns = ["group", "task", "metric", *sensitivity.SUMMARY_COLUMNS]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def claims_table(analyses: list[GroupAnalysis]) -> pd.DataFrame:
    """One tidy row per (group, method, base) of the seed claims, for export."""
    parts = [a.claims.assign(group=a.group.title, task=a.group.task, metric=a.metric)
             for a in analyses if len(a.claims)]  # fmt: skip
    columns = ["group", "task", "metric", *claims.CLAIM_COLUMNS]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def _chance(task: str, metric: str, runs: pd.DataFrame) -> tuple[float, str]:
    # Only a failed seed needs the chance level; finding it may load the task's data.
    if not runs["status"].isin(verdicts.FAILED).any():
        return math.nan, "no failed seed"
    return facts.chance_level(task, metric, runs)


def _planned(summary: pd.DataFrame, chosen: pd.DataFrame) -> pd.DataFrame:
    """Planned final seeds from the selections where recorded: a final run never started is missing too."""
    if summary.empty or chosen.empty:
        return summary
    recorded = chosen.set_index("label")["final_seeds"].map(lambda text: len(protocol.seeds_of(text)))
    planned = summary["label"].map(recorded).fillna(0).astype(int)
    summary = summary.assign(planned=np.maximum(summary["planned"], planned))
    return summary.assign(success_rate=summary["finished"] / summary["planned"].where(summary["planned"] > 0))


def _summary(reported: pd.DataFrame, metric: str, val: str, chance: float, val_chance: float) -> pd.DataFrame:
    """Per label: the verdict's summary (test, failures at chance) plus validation mean and chosen lr."""
    summary = verdicts.label_summary(reported, metric, chance)
    if summary.empty:
        return summary
    val_means = verdicts.seed_table(reported, val, val_chance).mean().rename("val_mean") if val in reported else None
    lrs = reported.groupby("label")["lr"].agg(lambda lr: lr.dropna().iloc[0] if lr.notna().any() else float("nan"))
    specs = reported.groupby("label")["optimizer"].agg(lambda specs: ", ".join(dict.fromkeys(specs)))
    summary = summary.merge(lrs.rename("lr"), left_on="label", right_index=True, how="left")
    summary = summary.merge(specs.rename("spec"), left_on="label", right_index=True, how="left")
    if val_means is not None:
        summary = summary.merge(val_means, left_on="label", right_index=True, how="left")
    return summary
