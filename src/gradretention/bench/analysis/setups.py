"""Comparison groups: runs that share one setup and may therefore be compared.

Two runs belong to one group when their resolved configs (``config_json``) agree on
everything except what a comparison varies: the optimizer (and its label), its lr, the
seed, the phase and the budget trial number. Runs of different setups (another epoch count, batch size,
data seed, device ...) are never pooled: each setup is its own group with its own
heading. Untuned ``single`` runs form groups apart from tuned (``tune``/``final``) ones.

Example:
    >>> groups = comparison_groups(runs)  # doctest: +SKIP
    >>> groups[0].title
    'digits-mlp'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# What a comparison varies: these config keys never split a group.
VARYING_KEYS: frozenset[str] = frozenset({"task", "optimizer", "label", "lr", "seed", "phase"})
VARYING_EXTRA: frozenset[str] = frozenset({"trial", "label"})
# None means "no cap" for these keys, "not recorded" for the others (an older store).
_NONE_IS_NO_CAP = frozenset({"max_steps"})
# Shown in this order; other keys follow alphabetically.
_SHOWN_FIRST = ("epochs", "max_steps", "batch_size", "eval_every", "log_every", "data_seed", "device")


@dataclass(frozen=True)
class ComparisonGroup:
    """The runs of one task under one setup.

    Attributes:
        task: the task name.
        setup: the shared config, without the varying keys (``extra`` flattened).
        kind: ``"tuned"`` (tune and final runs) or ``"untuned"`` (single runs).
        number: 1-based among the task's groups; 0 when the task has one group.
        runs: the group's rows of ``ResultsStore.runs()``, with a ``label`` column.
    """

    task: str
    setup: tuple[tuple[str, Any], ...]
    kind: str
    number: int
    runs: pd.DataFrame = field(compare=False, repr=False)

    @property
    def title(self) -> str:
        """``digits-mlp``, or ``digits-mlp · setup 2 (untuned runs)`` when the task has several."""
        suffix = " (untuned runs)" if self.kind == "untuned" else ""
        return self.task + (f" · setup {self.number}{suffix}" if self.number else suffix)

    def setup_rows(self) -> list[tuple[str, str]]:
        """``(key, value)`` pairs for display; a value the store lacks reads "not recorded"."""
        setup = dict(self.setup)
        keys = [k for k in _SHOWN_FIRST if k in setup] + sorted(k for k in setup if k not in _SHOWN_FIRST)
        rows = [(key, str(setup[key]) if setup[key] is not None else "none" if key in _NONE_IS_NO_CAP
                 else "not recorded") for key in keys]  # fmt: skip
        return rows or [("setup", "not recorded: store written by an older version")]


def with_labels(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with a ``label`` column: the optimizer as the user named it.

    Stores written before labels existed name an optimizer by its spec string only.
    Frames without ``optimizer_name`` or ``config_json`` (hand-made ones) get them
    derived: the spec's registry name, and an empty config.
    """
    labelled = runs.copy()
    if "label" not in labelled.columns:
        labelled["label"] = labelled["optimizer"]
    if "optimizer_name" not in labelled.columns:
        labelled["optimizer_name"] = labelled["optimizer"].astype(str).str.split("[").str[0]
    if "config_json" not in labelled.columns:
        labelled["config_json"] = "{}"
    labelled["label"] = labelled["label"].where(labelled["label"].notna() & (labelled["label"] != ""),
                                                labelled["optimizer"]).astype(str)  # fmt: skip
    return labelled


def setup_of(config_json: str, run_id: str = "?") -> dict[str, Any]:
    """The setup a run shares with its comparison group: its config minus the varying keys.

    Raises:
        ValueError: ``config_json`` is not a JSON object; the message names the run.
    """
    try:
        config = json.loads(config_json or "{}")
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"run {run_id}: config_json is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise ValueError(f"run {run_id}: config_json must be a JSON object, got {type(config).__name__}")
    setup = {key: value for key, value in config.items() if key not in VARYING_KEYS and key != "extra"}
    extra = config.get("extra") or []
    pairs = extra.items() if isinstance(extra, dict) else (tuple(item) for item in extra if len(item) == 2)
    for key, value in pairs:
        if key not in VARYING_EXTRA:
            setup[str(key)] = value
    return setup


def setup_key(config_json: str, run_id: str = "?") -> str:
    """A canonical string of :func:`setup_of`: equal keys, one group."""
    return json.dumps(setup_of(config_json, run_id), sort_keys=True, default=str)


def comparison_groups(runs: pd.DataFrame) -> list[ComparisonGroup]:
    """Split ``runs`` into groups of one task, one setup and one kind (tuned or untuned).

    Groups are ordered by task, then by size (most runs first), so a task's main
    comparison comes first and a stray run of another setup after it.
    """
    if runs.empty:
        return []
    labelled = with_labels(runs)
    configs = labelled["config_json"] if "config_json" in labelled.columns else ["{}"] * len(labelled)
    keys = [setup_key(c, r) for c, r in zip(configs, labelled["run_id"])]
    labelled["_setup"] = keys
    labelled["_kind"] = labelled["phase"].map(lambda phase: "untuned" if phase == "single" else "tuned")
    groups: list[ComparisonGroup] = []
    for task, rows in labelled.groupby("task", sort=True):
        parts = sorted(rows.groupby(["_setup", "_kind"], sort=True), key=lambda item: (-len(item[1]), item[0]))
        for index, ((key, kind), part) in enumerate(parts, start=1):
            setup = tuple(sorted(json.loads(key).items()))
            number = index if len(parts) > 1 else 0
            runs_of_group = part.drop(columns=["_setup", "_kind"]).reset_index(drop=True)
            groups.append(ComparisonGroup(str(task), setup, str(kind), number, runs_of_group))
    return groups


def differing_keys(groups: list[ComparisonGroup]) -> dict[str, list[str]]:
    """Per task with several groups: the setup keys whose values differ between them."""
    out: dict[str, list[str]] = {}
    by_task: dict[str, list[dict[str, Any]]] = {}
    for group in groups:
        by_task.setdefault(group.task, []).append(dict(group.setup) | {"runs": group.kind})
    for task, setups in by_task.items():
        if len(setups) > 1:
            keys = sorted({k for s in setups for k in s})
            out[task] = [k for k in keys if len({json.dumps(s.get(k), default=str) for s in setups}) > 1]
    return out
