"""Tuners: one per (task, label), each says which runs to train next and what it picked.

The sweep drives every tuner in rounds: it trains the union of their :meth:`Tuner.pending`
runs, hands each tuner the store's rows of its runs (:meth:`Tuner.update`), and repeats until
all are done; then :meth:`Tuner.selection` names the spec and lr of the final runs.

- :class:`GridTuner` — the grid protocol (:mod:`~gradretention.bench.protocol.grid`): every
  lr of the grid on every tuning seed, extended at an edge round by round.
- :class:`FixedTuner` — nothing to tune (protocol ``fixed``, the stop reason says why): the
  spec fixes its lr, or the grid has one point (the default lr with ``lr_factors=()``, or a
  single ``--lrs`` value).
- :class:`~gradretention.bench.protocol.budget.BudgetTuner` — K Sobol trials.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from gradretention.bench.protocol.grid import GridSearch
from gradretention.bench.protocol.selection import Selection, point_scores
from gradretention.bench.results import RunConfig

Planner = Callable[..., list[RunConfig]]
"""``(label, lr, seeds, phase, extra, spec=label) -> run configs``: one run per seed with the
sweep's settings, training ``spec`` (the label itself, or a trial's spec) and labelled ``label``."""


class Tuner(Protocol):
    """What the sweep asks of a protocol for one (task, label)."""

    def pending(self) -> list[RunConfig]: ...

    def update(self, runs: pd.DataFrame) -> None: ...

    @property
    def done(self) -> bool: ...

    def selection(self) -> Selection: ...


@dataclass
class Scoring:
    """How a (task, label) is scored and on which seeds."""

    task: str
    label: str
    metric: str  # e.g. val_accuracy
    higher_is_better: bool
    tuning_seeds: tuple[int, ...]
    final_seeds: tuple[int, ...]


@dataclass
class GridTuner:
    """The grid protocol for one (task, label): ``search`` decides, ``plan`` makes the runs."""

    scoring: Scoring
    search: GridSearch
    plan: Planner
    _planned: dict[float, list[RunConfig]] = field(default_factory=dict)

    def pending(self) -> list[RunConfig]:
        runs = []
        for lr in self.search.pending():
            self._planned[lr] = self.plan(self.scoring.label, lr, self.scoring.tuning_seeds, "tune", ())
            runs.extend(self._planned[lr])
        return runs

    def update(self, runs: pd.DataFrame) -> None:
        lrs = self.search.pending()
        ids = {run.run_id for lr in lrs for run in self._planned[lr]}
        mine = runs[runs["run_id"].isin(ids)]
        scores = point_scores(mine, "lr", self.scoring.metric, self.scoring.higher_is_better)
        missing = [lr for lr in lrs if lr not in scores]
        if missing:
            raise RuntimeError(f"no tuning runs recorded for {self.scoring.label!r} on {self.scoring.task!r} "
                               f"at lr {missing[0]!r}")  # fmt: skip
        self.search.update(scores)

    @property
    def done(self) -> bool:
        return self.search.done

    def selection(self) -> Selection:
        lr, score = self.search.best()
        s = self.scoring
        return Selection(task=s.task, label=s.label, protocol="grid", chosen_spec=s.label, chosen_lr=lr,
                         score=score.mean, tuning_seeds=s.tuning_seeds, final_seeds=s.final_seeds,
                         grid=self.search.grid(), edge=self.search.edge, stop_reason=self.search.stop_reason)  # fmt: skip


@dataclass
class FixedTuner:
    """No tuning: the final runs train ``lr`` (the spec's own or the only grid point)."""

    scoring: Scoring
    lr: float
    reason: str
    protocol: str = "fixed"
    done: bool = True

    def pending(self) -> list[RunConfig]:
        return []

    def update(self, runs: pd.DataFrame) -> None:
        return None

    def selection(self) -> Selection:
        s = self.scoring
        return Selection(task=s.task, label=s.label, protocol=self.protocol, chosen_spec=s.label,  # type: ignore[arg-type]
                         chosen_lr=self.lr, score=math.nan, tuning_seeds=(), final_seeds=s.final_seeds,
                         grid=(self.lr,), stop_reason=self.reason)  # fmt: skip
