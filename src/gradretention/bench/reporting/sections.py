"""One report section per comparison group: setup, protocol, verdicts, caveats, figures, tables.

Colour and bold mark only significant verdicts (green better, red worse); a tie is
plain. Every number that could mislead carries its context in the table itself:
success rate beside each mean, "k of n seeds" beside each median, the reference and the
verdict rule in the caption.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pandas as pd

from gradretention.bench.analysis import alpha
from gradretention.bench.analysis.analyse import GroupAnalysis
from gradretention.bench.analysis.facts import is_accuracy, is_percent
from gradretention.bench.analysis.protocol import selection_rows
from gradretention.bench.reporting import cells, figures
from gradretention.bench.reporting.blocks import Block, Bullets, Figure, FigureRow, Heading, Paragraph, TextTable


def group_blocks(analysis: GroupAnalysis, curves: pd.DataFrame, colors: dict[str, str], anchor: str) -> list[Block]:
    """The blocks of one group, in reading order."""
    group = analysis.group
    setup = " · ".join(f"{key.replace('_', ' ')} {value}" for key, value in group.setup_rows())
    protocol = analysis.protocol + (f" Tuning cost: {analysis.tuning_cost}." if analysis.tuning_cost else "")
    blocks: list[Block] = [Heading(f"Task {group.title}"), Paragraph(f"Setup: {setup}", "setup"),
                           Paragraph(protocol, "protocol")]  # fmt: skip
    if len(analysis.selections):
        blocks.append(Heading("How each setting was chosen", 3))
        headers = ("optimizer", "protocol", "chosen spec", "chosen lr", f"tuning score: {cells.metric_label(analysis.val_metric)}", "tuning seeds",
                   "final seeds", "grid edge / trials")  # fmt: skip
        score = partial(cells.format_value, analysis.val_metric)
        blocks.append(TextTable(headers, tuple(selection_rows(analysis.selections, score)), numeric=frozenset({3, 4})))
    blocks += [Heading("Final runs against the reference", 3), results_table(analysis)]
    if analysis.caveats:
        blocks.append(Bullets(analysis.caveats, "Caveats"))
    blocks += _figures(analysis, curves, colors, anchor)
    tables = (("The seed claims: each method against its base rule", _claims(analysis)),
              ("Steps and seconds to target", _targets(analysis)), ("lr sensitivity", _sensitivity(analysis)),
              ("α movement", _alpha(analysis)))  # fmt: skip
    for title, table in tables:
        if table is not None:
            blocks += [Heading(title, 3), table]
    return blocks


def results_table(analysis: GroupAnalysis) -> TextTable | Paragraph:
    """Per optimizer: lr, test mean ± sd, success rate, validation mean, paired difference and verdict."""
    metric, summary = analysis.metric, analysis.summary
    if summary.empty:
        return Paragraph("No evaluation run (final or single) in this group yet: nothing to compare.", "note")
    compared = analysis.comparisons.set_index("label") if len(analysis.comparisons) else pd.DataFrame()
    rows, tones = [], {}
    for index, row in enumerate(summary.sort_values("label").itertuples()):
        cells_ = [row.label, cells.lr(row.lr), cells.mean_sd(metric, row.mean, row.sd),
                  cells.share(row.finished, row.planned), cells.format_value(analysis.val_metric, getattr(row, "val_mean", None))]
        if row.label == analysis.reference:
            cells_ += ["reference", "reference", "", "", "", ""]
        elif row.label in compared.index:
            c = compared.loc[row.label]
            cells_ += [f"{cells.format_diff(metric, c['diff'])} (n={int(c['n'])})", _verdict(c),
                       cells.interval(metric, c["ci_t_low"], c["ci_t_high"], spread=c["sd"]),
                       "—" if c["sd"] == 0 else cells.interval(metric, c["ci_boot_low"], c["ci_boot_high"]),
                       cells.p_value(c["p_holm"]), _wilcoxon(c)]  # fmt: skip
            if c["verdict"] in ("better", "worse"):
                tones.update({(index, 0): c["verdict"], (index, 5): c["verdict"], (index, 6): c["verdict"]})
        else:
            cells_ += ["—", "no reference" if analysis.reference is None else "not run", "", "", "", ""]
        rows.append(tuple(cells_))
    headers = ("optimizer", "lr", f"{cells.metric_label(metric)} mean ± sd", "finished", cells.metric_label(analysis.val_metric),
               "Δ vs reference", "verdict", "95 % CI of Δ (t)", "95 % CI of Δ (bootstrap)", "p (Holm)", "Wilcoxon p")  # fmt: skip
    return TextTable(headers, tuple(rows), tones, frozenset({1, 2, 4, 5, 9}), _caption(analysis))


def _verdict(row: pd.Series) -> str:
    """The verdict, and for a tie the rule that made it one."""
    if row["verdict"] != "tie":
        return str(row["verdict"])
    why = str(row["why"])
    if "test-set noise" in why:
        return "tie (within test noise)"
    if "Holm" in why:
        return "tie (not significant after Holm)"
    return "tie (n_test unknown)" if "not recorded" in why else "tie (CI includes 0)"


def _wilcoxon(row: pd.Series) -> str:
    if pd.isna(row["wilcoxon_min_p"]):
        return "—"
    return "too few seeds" if pd.isna(row["wilcoxon_p"]) else cells.p_value(row["wilcoxon_p"])


def _caption(analysis: GroupAnalysis) -> str:
    reference = (f"Reference: {analysis.reference}, the baseline with the best mean {cells.metric_label(analysis.val_metric)}"
                 " (never chosen on test)." if analysis.reference else
                 "No baseline in this group: no reference, no verdicts.")  # fmt: skip
    if is_accuracy(analysis.metric):
        n_test = analysis.n_test
        noise = (f"|Δ| > 1.96·SE_test, SE_test = √(2p̄(1−p̄)/n_test) with n_test = {n_test}" if n_test
                 else "|Δ| > 1.96·SE_test (n_test not recorded: no verdict can rule out test-set noise)")  # fmt: skip
    else:
        noise = "no SE_test term (not an accuracy, so no binomial test-set error)"
    chance = f"; failed seeds count at {analysis.chance_how}" if analysis.chance_how != "no failed seed" else ""
    compared = analysis.comparisons
    wilcoxon = ""
    if len(compared) and compared["wilcoxon_min_p"].notna().any():
        n = int(compared["n"].max())
        wilcoxon = (f" Wilcoxon signed-rank (exact): with n = {n} seeds its smallest attainable p is 2/2ⁿ = {2 / 2**n:.3g}; "
                    f"where that exceeds the strictest Holm level 0.05/{len(compared)}, the cell says "
                    "'too few seeds' (for this test) instead of a p-value.")  # fmt: skip
    return (f"{reference} Δ = optimizer − reference, paired over shared final seeds (n), in points for percentages. "
            f"Verdict better/worse only where the Holm-corrected paired-t CI excludes 0 and {noise}; otherwise tie. "
            "The CIs shown are the unadjusted 95 % intervals. "
            f"finished = finished of planned final seeds{chance}.{wilcoxon}")  # fmt: skip


def _figures(analysis: GroupAnalysis, curves: pd.DataFrame, colors: dict[str, str], anchor: str) -> list[Block]:
    metric, reported = analysis.metric, analysis.reported
    # Percentages in the figures as in the tables.
    scale = 100.0 if is_percent(metric) else 1.0
    val_scale = 100.0 if is_percent(analysis.val_metric) else 1.0
    points = curves.merge(reported[["run_id", "label", "seed", "status"]], on="run_id")
    points = points[points["status"].isin(("done", "interrupted"))]
    made = [
        (figures.seed_strip(_scaled(_seed_values(analysis), scale), colors, title=f"{cells.metric_label(metric)} per final seed",
                            y_title=cells.metric_label(metric), chance=scale * analysis.chance),
         "seeds", "Every final seed (× = failed, counted at chance); boxes show the spread."),
        (figures.band_figure(_curve(points, "train", "loss", "step"), colors, title="train loss",
                             x_title="step", y_title="train loss (per logged step)", log_y=True),
         "train", "Median over seeds with min–max band; click “· seeds” in the legend for each seed."),
        (figures.band_figure(_scaled(_curve(points, "val", metric.removeprefix("test_"), "epoch"), val_scale), colors,
                             title=cells.metric_label(analysis.val_metric), x_title="epoch",
                             y_title=cells.metric_label(analysis.val_metric)),
         "val", "Validation metric at each evaluation: median and min–max over seeds."),
        (figures.band_figure(_alpha_curve(analysis, curves), colors, title="α_t / α₀ (param group 0), adaptive optimizers",
                             x_title="step", y_title="α_t / α₀"),
         "alpha", "Learning rate relative to its initial value: flat at 1 means α never moved."),
        (figures.band_figure(_scaled(analysis.grid.rename(columns={"lr": "x"}), val_scale), colors,
                             title="lr sensitivity: validation vs α₀", x_title="initial lr α₀",
                             y_title=cells.metric_label(analysis.val_metric), log_x=True, markers=True)
         if len(analysis.grid) else None,
         "sensitivity", "Tuning runs on the absolute grid: median and min–max over tuning seeds (failed at chance). "
                        "Double-click a legend entry to show that optimizer alone."),
        (figures.interval_figure(_budget(analysis, val_scale), colors, title="budget: best-so-far validation vs trials",
                                 x_title="trials", y_title=cells.metric_label(analysis.val_metric))
         if len(analysis.best_so_far) else None,
         "budget", f"Budget protocol: best-so-far mean over 1000 random orders of the trials, band 2.5–97.5 %. "
                   f"Tuning cost: {analysis.tuning_cost}."),
    ]  # fmt: skip
    shown = tuple(Figure(f"{anchor}-{name}", figure, caption) for figure, name, caption in made if figure)
    return [FigureRow(shown)] if shown else []


def _scaled(frame: pd.DataFrame, factor: float) -> pd.DataFrame:
    return frame.assign(value=frame["value"].astype(float) * factor) if factor != 1.0 else frame


def _seed_values(analysis: GroupAnalysis) -> pd.DataFrame:
    table = analysis.seeds
    if table.empty:
        return pd.DataFrame(columns=["label", "seed", "value", "failed"])
    long = table.stack().rename("value").reset_index()
    failed = analysis.reported[analysis.reported["status"].isin(("diverged", "error"))][["label", "seed"]]
    marks = set(zip(failed["label"], failed["seed"]))
    long["failed"] = [(label, seed) in marks for label, seed in zip(long["label"], long["seed"])]
    return long


def _curve(points: pd.DataFrame, split: str, name: str, x: str) -> pd.DataFrame:
    rows = points[(points["split"] == split) & (points["name"] == name)]
    return pd.DataFrame({"label": rows["label"], "x": rows[x], "seed": rows["seed"], "value": rows["value"]})


def _alpha_curve(analysis: GroupAnalysis, curves: pd.DataFrame) -> pd.DataFrame:
    # Baselines keep α constant by design: their flat lines would only hide the adaptive ones.
    reported = analysis.reported
    adaptive = reported[reported["optimizer_name"].astype(str).map(alpha.adapts_lr).astype(bool)]
    bands = alpha.trajectory_bands(adaptive, curves)
    seeds = bands[bands["run_id"].notna()]
    return pd.DataFrame({"label": seeds["label"], "x": seeds["step"], "seed": seeds["seed"], "value": seeds["ratio"]})


def _budget(analysis: GroupAnalysis, scale: float) -> pd.DataFrame:
    best = analysis.best_so_far
    return pd.DataFrame({"label": best["label"], "x": best["trials"], "mean": scale * best["mean"],
                         "low": scale * best["low"], "high": scale * best["high"]})  # fmt: skip


def _targets(analysis: GroupAnalysis) -> TextTable | None:
    """One row per optimizer, one column block per target (validation, train loss)."""
    frame = analysis.targets
    if frame.empty or frame["reached"].sum() == 0 and frame["target"].str.contains("not recorded").all():
        return None
    kinds = list(dict.fromkeys(frame["kind"]))
    if frame.groupby("kind")["target"].nunique().max() > 1:  # targets differ between optimizers: say each
        frame = frame.assign(kind=frame["kind"] + ": " + frame["target"])
        kinds = list(dict.fromkeys(frame["kind"]))
    targets = {kind: frame.loc[frame["kind"] == kind, "target"].iloc[0] for kind in kinds}
    by = frame.set_index(["label", "kind"])
    rows = []
    for label in sorted(frame["label"].unique()):
        cells_ = [label]
        for kind in kinds:
            r = by.loc[(label, kind)] if (label, kind) in by.index else None
            cells_ += ["—", "—", "—"] if r is None else [
                f"{int(r['reached'])} of {int(r['n'])}", f"{r['median_steps']:.0f}" if pd.notna(r["median_steps"]) else "—",
                f"{r['median_seconds']:.2f}" if pd.notna(r["median_seconds"]) else "—"]  # fmt: skip
        rows.append(tuple(cells_))
    headers = ("optimizer", *(h for kind in kinds for h in (f"{targets[kind]}: seeds reached", "median steps",
                                                           "median seconds")))  # fmt: skip
    caption = ("Steps to target: the first step at which the per-step train loss, or the validation metric at its "
               "evaluations, reaches the target; medians over the seeds that reached it (a failed seed did not).")  # fmt: skip
    numeric = frozenset(j for j in range(1, len(headers)) if j % 3 != 1)
    return TextTable(headers, tuple(rows), numeric=numeric, caption=caption)


def _claims(analysis: GroupAnalysis) -> TextTable | None:
    """Each method against the baseline it modifies: the seed claims' numbers with their CIs."""
    frame = analysis.claims
    if frame.empty:
        return None
    rows, tones = [], {}
    for index, r in enumerate(frame.itertuples()):
        steps = "—" if pd.isna(r.steps_ratio) else f"{r.steps_ratio:.2f}" + (
            f" [{r.steps_low:.2f}, {r.steps_high:.2f}]" if pd.notna(r.steps_low) else "") + f" (n={r.steps_n})"
        rows.append((r.label, r.base, _signed_decades(r.width_diff, r.width_low, r.width_high),
                     f"{cells.format_diff(analysis.metric, r.diff)} " + ("(equal on every seed)" if r.ci_t_low == r.ci_t_high
                     else cells.interval(analysis.metric, r.ci_t_low, r.ci_t_high)), _verdict(pd.Series(r._asdict())),
                     steps))  # fmt: skip
        if r.verdict in ("better", "worse"):
            tones.update({(index, 0): r.verdict, (index, 4): r.verdict})
    kind = frame["steps_kind"].iloc[0]
    headers = ("optimizer", "its base", "Δ lr-sensitivity width (decades) [95 % CI]", f"Δ {cells.metric_label(analysis.metric)} [95 % CI]",
               "verdict vs base", f"steps to {kind} target, ratio to base [95 % CI]")  # fmt: skip
    caption = ("The seed claims: each method against the baseline rule it modifies (HD vs its base, RescaledSGD vs "
               "SGD, EnhancedSGD vs momentum SGD, the variance rule vs its base). Δ width > 0: less sensitive to α₀; "
               "paired bootstrap over tuning seeds. Δ test: paired over final seeds, Holm over these pairs, same rule as "
               "above. Steps ratio < 1: fewer steps than the base (geometric mean over the seeds both reached).")  # fmt: skip
    return TextTable(headers, tuple(rows), tones, frozenset({2, 3, 5}), caption)


def _signed_decades(diff: float, low: float, high: float) -> str:
    if pd.isna(diff):
        return "—"
    if pd.isna(low):
        return f"{diff:+.2f}"
    return f"{diff:+.2f} [{low:+.2f}, {high:+.2f}]" if low != high else f"{diff:+.2f} (no spread over resamples)"


def _sensitivity(analysis: GroupAnalysis) -> TextTable | None:
    """Widths of the grid-tuned optimizers, then the untuned ones (lr-free peers, fixed lrs) beside them.

    Every row carries its final seeds' test score, so that a width is read next to what the
    optimizer reaches; an optimizer whose lr was not tuned has no grid, hence no width.
    """
    frame = analysis.sensitivity
    if frame.empty:
        return None
    test = _test_scores(analysis)
    rows = [(r.label, cells.lr(r.best_lr), cells.format_value(analysis.val_metric, r.best_score), f"{r.width:.2f}",
             _width_ci(r), _null(r.null_width), _p(r.lr_effect_p), str(r.points), str(r.seeds),
             test.get(r.label, "—")) for r in frame.itertuples()]  # fmt: skip
    summary = analysis.summary
    untuned = summary[~summary["label"].isin(frame["label"])] if len(summary) else summary
    rows += [(r.label, f"{cells.lr(r.lr)} (fixed)", "— (not tuned)", "— (no grid)", "—", "—", "—", "0", "—",
              test.get(r.label, "—")) for r in untuned.itertuples()]  # fmt: skip
    headers = ("optimizer", "best lr", "best validation score", "width (decades)", "95 % CI",
               "width if α₀ had no effect", "p (α₀ effect)", "grid points", "tuning seeds",
               f"{_metric_name(analysis.metric)} (final seeds)")  # fmt: skip
    caption = ("lr-sensitivity width: the longest run of consecutive grid lrs whose score is within 1 point (0.01) "
               "of the best, in decades (one point = 0); CI over bootstrap resamples of the tuning seeds. "
               "Width if α₀ had no effect: the median width of the same runs with each seed's scores shuffled "
               "across the grid (the most the tuning seeds' noise lets the 1-point rule see); p (α₀ effect): "
               "permutation test of the grid's spread of means against those shuffles (large: no α₀ effect "
               "beyond the runs' own noise). "
               "Optimizers run at a fixed lr (the lr-free peers at lr = 1) have no grid and no width; the last "
               "column is every optimizer's mean over its final seeds, at its chosen or fixed lr.")  # fmt: skip
    return TextTable(headers, tuple(rows), numeric=frozenset({1, 2, 3, 5, 6, 7, 8, 9}), caption=caption)


def _null(width: float) -> str:
    return "—" if pd.isna(width) else f"{width:.2f}"


def _p(value: float) -> str:
    return "—" if pd.isna(value) else f"{value:.3f}"


def _test_scores(analysis: GroupAnalysis) -> dict[str, str]:
    """Label → its final seeds' mean of the reported metric, formatted."""
    if analysis.summary.empty:
        return {}
    return {r.label: cells.format_value(analysis.metric, r.mean) for r in analysis.summary.itertuples()}


def _metric_name(metric: str) -> str:
    return metric.replace("_", " ")


def _width_ci(row: Any) -> str:
    low, high = row.ci_low, row.ci_high
    if pd.isna(low):
        return "— (one tuning seed)"
    return f"[{low:.2f}, {high:.2f}]" if low != high else f"no spread over resamples ({low:.2f})"


def _alpha(analysis: GroupAnalysis) -> TextTable | None:
    frame = analysis.alpha_counts
    if frame.empty:
        return None
    rows = tuple((r.label, str(r.runs), alpha.format_movement(r.median_movement), f"{r.min_ratio:.3g}",
                  str(r.inactive), str(r.negative)) for r in frame.itertuples())  # fmt: skip
    headers = ("optimizer", "final runs", "median α movement", "min α_t/α₀", "α inactive (< 1 %)", "α negative")
    caption = "α movement of a run: max over steps of |α_t/α₀ − 1|; α negative: α_t ≤ 0 at some step."
    return TextTable(headers, rows, numeric=frozenset({1, 2, 3, 4, 5}), caption=caption)

