"""Scoring tuning runs, picking the best point, and the record of what was picked.

A tuning seed's **score** is the task's validation target metric at the end of its run
(``val_<target_metric>``, the last evaluation, which is always at the last step). A seed
that did not finish (``diverged``, ``error``) scores the task's chance level (the run's
``chance`` final, :meth:`gradretention.tasks.base.Task.chance_level`), so a point that
blows up on one seed of three is penalised, not dropped. A point's score is the mean over
its tuning seeds; the best point has the best mean, ties going to the smaller lr (the
cheaper, safer choice), then to the earlier trial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Hashable, Literal

import pandas as pd

Protocol = Literal["grid", "budget", "fixed"]
_TIE = 1e-12  # means closer than this are equal: identical runs must tie exactly, not by rounding


@dataclass(frozen=True)
class PointScore:
    """A tuning point's score: the mean over ``seeds`` runs, ``diverged`` of them failures."""

    mean: float
    seeds: int
    diverged: int = 0

    @property
    def all_diverged(self) -> bool:
        return self.seeds > 0 and self.diverged == self.seeds


def point_scores(runs: pd.DataFrame, key: str, metric: str, higher_is_better: bool = True) -> dict[Hashable, PointScore]:
    """Per value of column ``key`` (``lr``, ``trial``), the :class:`PointScore` of its runs.

    Each run scores its ``metric`` if it finished (``done``, finite), else its ``chance``;
    a run without a recorded chance level (stores written before it existed) scores the
    worst value there is: 0 where higher is better, ``inf`` for a loss.

    Args:
        runs: Rows of :meth:`~gradretention.bench.store.ResultsStore.runs` (``status`` and,
            where present, ``metric`` and ``chance`` columns).
        key: The column that names a point.
        metric: The score column, e.g. ``val_accuracy``.
    """
    def column(name: str) -> pd.Series:
        return pd.to_numeric(runs[name], errors="coerce") if name in runs else pd.Series(math.nan, index=runs.index)

    value, chance = column(metric), column("chance")
    worst = 0.0 if higher_is_better else math.inf
    finished = (runs["status"] == "done") & value.map(math.isfinite)
    score = value.where(finished, chance.where(chance.map(math.isfinite), worst))
    table = pd.DataFrame({"point": runs[key], "score": score, "failed": ~finished})
    return {point: PointScore(float(rows["score"].mean()), len(rows), int(rows["failed"].sum()))
            for point, rows in table.groupby("point", sort=True)}  # fmt: skip


def best_point(scores: Mapping[Any, PointScore], higher_is_better: bool = True) -> Any:
    """The key with the best mean; ties to the smallest key (the smaller lr, the earlier trial).

    Raises:
        ValueError: no scores.
    """
    if not scores:
        raise ValueError("no scored points to choose from")
    sign = 1.0 if higher_is_better else -1.0
    top = max(sign * score.mean for score in scores.values())
    return min(key for key, score in scores.items() if sign * score.mean >= top - _TIE)


@dataclass(frozen=True)
class Selection:
    """What the sweep decided for one (task, label); a row of ``ResultsStore.selections()``.

    Attributes:
        label: The optimizer as the user named it (canonical spec).
        protocol: ``grid`` / ``budget`` (tuned), ``fixed`` (the spec fixes the lr).
        chosen_spec / chosen_lr: What the final runs train (``RunConfig.optimizer`` / ``lr``).
        score: The chosen point's mean validation score over the tuning seeds (NaN: not tuned).
        grid: Every lr scored (grid protocol), ascending; the trials' lrs for ``budget``.
        edge: ``""``, ``"low"`` or ``"high"``: the best sat on that edge when the search stopped.
        stop_reason: Why the search stopped, in words.
        trials: Trials per optimizer (budget protocol); 0 otherwise.
    """

    task: str
    label: str
    protocol: Protocol
    chosen_spec: str
    chosen_lr: float | None
    score: float
    tuning_seeds: tuple[int, ...]
    final_seeds: tuple[int, ...]
    grid: tuple[float, ...] = ()
    edge: str = ""
    stop_reason: str = ""
    trials: int = 0

    def record(self, final_run_ids: Sequence[str]) -> dict[str, Any]:
        """The store row (:data:`~gradretention.bench.store.SELECTION_COLUMNS` but ``created_at``)."""
        return {
            "task": self.task, "label": self.label, "protocol": self.protocol, "chosen_spec": self.chosen_spec,
            "chosen_lr": self.chosen_lr, "score": None if math.isnan(self.score) else self.score,
            "tuning_seeds": list(self.tuning_seeds), "final_seeds": list(self.final_seeds),
            "grid": list(self.grid), "edge": self.edge, "stop_reason": self.stop_reason, "trials": self.trials,
            "final_run_ids": list(final_run_ids),
        }  # fmt: skip
