"""The caveats a reader needs next to a comparison, computed from the runs themselves.

Each is one sentence naming the optimizer: the best lr at a grid edge (and whether a
bound stopped the extension), few seeds, α that did not move or went ≤ 0, failed final
seeds, unfinished runs, optimizers whose numbers are identical on every seed, and labels whose
runs were trained under different optimizer settings (a default changed between them).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from gradretention.bench.analysis.alpha import describe_flags

SMALL_N = 5


def edge_caveats(selections: pd.DataFrame, inferred: dict[str, str]) -> list[str]:
    """Best lr on the edge of its grid: recorded (with what stopped it) or inferred from old runs."""
    out = []
    for row in selections.itertuples():
        if row.protocol == "grid" and row.edge:
            out.append(f"{row.label}: best lr {float(row.chosen_lr):g} still at the {row.edge} edge of the grid "
                       f"({row.stop_reason or 'extension stopped'}); the optimum may lie beyond it.")  # fmt: skip
    if selections.empty:
        out += [f"{label}: the chosen lr is the {edge}est tuned lr; the optimum may lie beyond the grid."
                for label, edge in sorted(inferred.items())]  # fmt: skip
    return out


def seed_caveats(summary: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
    """Few paired seeds, failed final seeds, unfinished seeds."""
    out = []
    small = comparisons[comparisons["n"] < SMALL_N] if not comparisons.empty else comparisons
    if len(small):
        ns = sorted(set(small["n"].astype(int)))
        out.append(f"Small n: {', '.join(small['label'])} compared on {'/'.join(map(str, ns))} shared seed(s) "
                   f"(< {SMALL_N}); a tie there is weak evidence of equality.")  # fmt: skip
    for row in summary.itertuples():
        if row.failed:
            out.append(f"{row.label}: {row.failed} of {row.planned} final seeds diverged or failed; they count at "
                       "chance level in its mean and differences.")  # fmt: skip
        unfinished = row.planned - row.finished - row.failed
        if unfinished > 0:
            out.append(f"{row.label}: {unfinished} of {row.planned} final seeds unfinished (interrupted or missing); "
                       "rerun the same command to complete them.")  # fmt: skip
    return out


def alpha_caveats(counts: pd.DataFrame) -> list[str]:
    """α inactive / α negative, per adaptive optimizer."""
    return [f"{row['label']}: {text}." for _, row in counts.iterrows() if (text := describe_flags(row))]


def identical_caveats(table: pd.DataFrame) -> list[str]:
    """Labels whose values agree on every shared seed (at least two): their comparison says nothing."""
    out, seen = [], set()
    labels, values = list(table.columns), table.to_numpy(float)
    finite = np.isfinite(values)
    for i, first in enumerate(labels):
        for j in range(i + 1, len(labels)):
            shared = finite[:, i] & finite[:, j]
            if labels[j] in seen or shared.sum() < 2 or not (values[shared, i] == values[shared, j]).all():
                continue
            seen.add(labels[j])
            out.append(f"{first} and {labels[j]} gave identical values on all {int(shared.sum())} shared seeds: "
                       "comparing them is vacuous (did the difference between them ever act?).")  # fmt: skip
    return out


def settings_caveats(runs: pd.DataFrame) -> list[str]:
    """Labels whose runs recorded more than one set of optimizer settings (lr aside: the grid varies it).

    A sweep retrains such runs when it resumes (:class:`~gradretention.bench.sweep.StaleRunsWarning`);
    a store edited by hand or written across versions can still hold both, and its numbers then mix them.
    """
    if "optimizer_settings" not in runs.columns:
        return []
    out = []
    recorded = runs[runs["optimizer_settings"].notna() & (runs["optimizer_settings"] != "unknown")]
    for label, values in recorded.groupby("label")["optimizer_settings"]:
        settings = [{k: v for k, v in json.loads(text).items() if k != "lr"} for text in values.unique()]
        distinct = {json.dumps(one, sort_keys=True) for one in settings}
        if len(distinct) > 1:
            changed = sorted({key for one in settings for key in one
                              if len({json.dumps(other.get(key)) for other in settings}) > 1})  # fmt: skip
            out.append(f"{label}: its runs were trained under {len(distinct)} different optimizer settings "
                       f"(differing in {', '.join(changed)}); its numbers mix them — rerun the sweep to retrain "
                       "the stale runs.")  # fmt: skip
    return out
