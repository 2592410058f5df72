"""The protocol behind a comparison group, in words and as a table, from the store's selections.

``ResultsStore.selections()`` (one row per task and label) says how each optimizer's
final setting was chosen: the protocol (``grid``, ``budget`` or ``fixed``), the chosen
spec and lr, its validation score, the tuning and final seeds, the grid, whether the
best sat at an edge and what stopped the extension. A store written before selections
existed gets a clear "not recorded" plus what the runs themselves show.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pandas as pd

from gradretention.bench.analysis.convergence import trial_number

SELECTION_COLUMNS = ("task", "label", "protocol", "chosen_spec", "chosen_lr", "score", "tuning_seeds",
                     "final_seeds", "grid", "edge", "stop_reason", "trials")  # fmt: skip
OLD_STORE = ("protocol not recorded: a store written by an older version, or a sweep that has not chosen its "
             "settings yet")


def group_selections(selections: pd.DataFrame | None, task: str, labels: list[str]) -> pd.DataFrame:
    """The selection rows of ``task`` for ``labels``; empty when the store has none."""
    if selections is None or selections.empty or not set(SELECTION_COLUMNS) <= set(selections.columns):
        return pd.DataFrame(columns=list(SELECTION_COLUMNS))
    rows = selections[(selections["task"] == task) & selections["label"].isin(labels)]
    return rows.sort_values("label").reset_index(drop=True)


def seeds_of(text: object) -> list[int]:
    """A JSON list of seeds (``"[0, 1, 2]"``) as ints; ``[]`` for anything else."""
    try:
        values = json.loads(str(text))
    except json.JSONDecodeError:
        return []
    return [int(v) for v in values] if isinstance(values, list) else []


def seed_span(seeds: list[int]) -> str:
    """``[0, 1, 2]`` -> ``0–2 (3)``; ``[0, 5]`` -> ``0, 5 (2)``."""
    if not seeds:
        return "—"
    ordered = sorted(set(seeds))
    body = f"{ordered[0]}–{ordered[-1]}" if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2 \
        else ", ".join(map(str, ordered))  # fmt: skip
    return f"{body} ({len(ordered)})"


def protocol_text(runs: pd.DataFrame, selections: pd.DataFrame, kind: str, val_metric: str) -> str:
    """One paragraph stating how the group's settings were chosen and which seeds report."""
    if kind == "untuned":
        seeds = seed_span(sorted(runs["seed"].unique().tolist()))
        return (f"Untuned runs: each optimizer ran at its configured lr (seeds {seeds}); nothing was tuned, so "
                "these numbers are not comparable with tuned results and are kept apart.")  # fmt: skip
    scored = val_metric.replace("_", " ").replace("val ", "validation ")
    if selections.empty:
        return f"{OLD_STORE}. " + _inferred(runs, scored)
    parts = []
    for protocol, rows in selections.groupby("protocol", sort=True):
        labels = ", ".join(rows["label"])
        tuning = seed_span(seeds_of(rows["tuning_seeds"].iloc[0]))
        final = seed_span(seeds_of(rows["final_seeds"].iloc[0]))
        if protocol == "grid":
            grid = sorted({lr for g in rows["grid"] for lr in _floats(g)})
            span = f"{grid[0]:.3g} … {grid[-1]:.3g}, {len(grid)} points" if grid else "not recorded"
            parts.append(f"Grid protocol ({labels}): one shared absolute log grid of lrs ({span}, half-decade "
                         f"steps, extended past an edge until the best is interior or a bound stops it); each lr "
                         f"scored by the mean {scored} over tuning seeds {tuning}, a failed seed at chance; "
                         f"ties go to the smaller lr.")  # fmt: skip
        elif protocol == "budget":
            trials = int(pd.to_numeric(rows["trials"], errors="coerce").max())
            parts.append(f"Budget protocol ({labels}): {trials} quasi-random trials per optimizer over its declared "
                         f"search space, each scored by the mean {scored} over tuning seeds {tuning}.")  # fmt: skip
        else:
            reasons = "; ".join(dict.fromkeys(str(r) for r in rows["stop_reason"] if r)) or "the lr written in the spec"
            parts.append(f"Fixed, not tuned ({labels}): {reasons}.")
        parts.append(f"Final seeds {final}, disjoint from the tuning seeds: no reported number took part in a choice.")
    return " ".join(dict.fromkeys(parts))


def _inferred(runs: pd.DataFrame, scored: str) -> str:
    tune, final = runs[runs["phase"] == "tune"], runs[runs["phase"] == "final"]
    if tune.empty:
        return "The runs hold no tuning phase."
    lrs = sorted(set(pd.to_numeric(tune["lr"], errors="coerce").dropna()))
    text = (f"From the runs: lrs {', '.join(f'{lr:.3g}' for lr in lrs)} scored on {scored} with tuning seeds "
            f"{seed_span(tune['seed'].tolist())}; final seeds {seed_span(final['seed'].tolist())}.")  # fmt: skip
    shared = sorted(set(tune["seed"]) & set(final["seed"]))
    if shared:
        text += (f" Final seeds {', '.join(map(str, shared))} also tuned: those final runs are selected data "
                 "and flatter the chosen lr.")  # fmt: skip
    return text


def selection_rows(selections: pd.DataFrame, score: Callable[[float], str]) -> list[tuple[str, ...]]:
    """Display rows: label, protocol, chosen spec, chosen lr, val score (formatted by ``score``),
    tuning / final seeds, edge."""
    rows = []
    for row in selections.itertuples():
        edge = f"{row.edge} edge: {row.stop_reason}" if row.edge else (row.stop_reason or "interior")
        if row.protocol == "budget":
            edge = f"{int(row.trials)} trials"
        elif row.protocol == "fixed":
            edge = row.stop_reason or "fixed by the spec"
        rows.append((row.label, row.protocol, row.chosen_spec, _lr(row.chosen_lr), score(row.score),
                     seed_span(seeds_of(row.tuning_seeds)), seed_span(seeds_of(row.final_seeds)), edge))  # fmt: skip
    return rows


def inferred_edges(runs: pd.DataFrame) -> dict[str, str]:
    """Old stores: per label whose final lr is the lowest or highest tuned lr, ``"low"``/``"high"``."""
    out = {}
    untrialled = pd.Series([trial_number(c) is None for c in runs["config_json"]], index=runs.index, dtype=bool)
    tune = runs[(runs["phase"] == "tune") & untrialled]
    for label, rows in tune.groupby("label"):
        lrs = sorted(set(pd.to_numeric(rows["lr"], errors="coerce").dropna()))
        final = pd.to_numeric(runs.loc[(runs["label"] == label) & (runs["phase"] == "final"), "lr"], errors="coerce")
        if len(lrs) > 1 and len(final.dropna()):
            chosen = float(final.dropna().iloc[0])
            out.update({label: "low"} if chosen == lrs[0] else {label: "high"} if chosen == lrs[-1] else {})
    return out


def _floats(text: object) -> list[float]:
    try:
        values = json.loads(str(text))
    except json.JSONDecodeError:
        return []
    return [float(v) for v in values] if isinstance(values, list) else []


def _lr(value: object) -> str:
    number = pd.to_numeric(value, errors="coerce")
    return "—" if pd.isna(number) else f"{float(number):.3g}"
