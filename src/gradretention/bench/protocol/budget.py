"""The budget protocol: K scrambled-Sobol trials per optimizer over its declared search space.

Every optimizer gets the same number of trials K. Trial ``i`` is the ``i``-th point of a
scrambled Sobol sequence in ``[0, 1)^d`` (``scipy.stats.qmc.Sobol``, seeded by
:data:`SOBOL_SEED`, so the design is the same run after run and for every task), mapped onto
the optimizer's space dimension by dimension::

    log-uniform  x = low * (high / low) ** u        (lr, hypergrad_lr, weight_decay, lr_scaling)
    uniform      x = low + (high - low) * u         (momentum, decay)

and rounded to 4 significant digits, so that specs read ``adam_hd[hypergrad_lr=3.162e-07]``.
The lr's range is the sweep's ``lr_low .. lr_high`` (default ``1e-5 .. 1``, the grid
protocol's first grid). A hyperparameter the spec sets (``adam_hd[hypergrad_lr=1e-07]``)
is not sampled, and an lr set in the spec is not tuned at all (protocol ``fixed``).

Each trial trains on every tuning seed; its score is the mean validation metric (a failed
seed scores chance). The best trial (ties: the earlier one) gives the final runs' spec and lr.
Each tuning run carries ``("trial", i)`` in ``RunConfig.extra``, so a report can plot the
best-so-far score against the number of trials.

:data:`SEARCH_SPACES` declares the spaces by registry name; a name it does not list is
tuned over its lr alone (and the selection's stop reason says so).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import qmc

from gradretention.bench.protocol.selection import Selection, best_point, point_scores
from gradretention.bench.protocol.tuning import Planner, Scoring
from gradretention.bench.results import RunConfig
from gradretention.optim import format_spec, optimizer_info, parse_spec

SOBOL_SEED = 20_240_601
TRIAL_KEY = "trial"


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter's range: ``log`` (log-uniform) or ``linear`` (uniform)."""

    name: str
    low: float
    high: float
    scale: str = "log"

    def __post_init__(self) -> None:
        if self.scale not in ("log", "linear") or not self.low < self.high or (self.scale == "log" and self.low <= 0):
            raise ValueError(f"bad search dimension {self}: need low < high (> 0 for log) and scale log|linear")

    def value(self, unit: float) -> float:
        """The point at ``unit`` in ``[0, 1)``, to 4 significant digits."""
        if self.scale == "log":
            raw = self.low * (self.high / self.low) ** unit
        else:
            raw = self.low + (self.high - self.low) * unit
        return float(f"{raw:.4g}")


_MOMENTUM = Dimension("momentum", 0.5, 0.99, "linear")
_HD_SGD = Dimension("hypergrad_lr", 1e-6, 1e-1)  # SGD-HD's default 1e-3 (Baydin et al.) in the middle
_HD_ADAPTIVE = Dimension("hypergrad_lr", 1e-10, 1e-4)  # Adam-HD's default 1e-7 in the middle
_HD_NORMALISED = Dimension("hypergrad_lr", 1e-8, 1e-2)  # the *_adam controllers' 1e-5 / 1e-6 defaults

SEARCH_SPACES: dict[str, tuple[Dimension, ...]] = {
    "sgd": (), "adagrad": (), "rmsprop": (), "adam": (),
    "momentum": (_MOMENTUM,), "nesterov": (_MOMENTUM,), "enhanced_sgd": (_MOMENTUM,),
    "enhanced_sgd_spec": (_MOMENTUM,),
    "adamw": (Dimension("weight_decay", 1e-4, 1e-1),),
    "sgd_hd": (_HD_SGD,), "sgdn_hd": (_HD_SGD,), "sgd_hd_sgdn": (_HD_SGD,), "sgdn_hd_sgdn": (_HD_SGD,),
    "sgd_hd_adam": (_HD_NORMALISED,), "sgdn_hd_adam": (_HD_NORMALISED,),
    "adam_hd": (_HD_ADAPTIVE,), "adam_hd_sgdn": (_HD_ADAPTIVE,), "adam_hd_adam": (_HD_NORMALISED,),
    "adagrad_hd": (_HD_ADAPTIVE,), "adagrad_hd_sgdn": (_HD_ADAPTIVE,), "adagrad_hd_adam": (_HD_NORMALISED,),
    "rmsprop_hd": (_HD_ADAPTIVE,), "rmsprop_hd_sgdn": (_HD_ADAPTIVE,), "rmsprop_hd_adam": (_HD_NORMALISED,),
    "rescaled_sgd": (Dimension("decay", 0.5, 0.99, "linear"),),
    "adam_var": (Dimension("lr_scaling", 0.01, 1.0),), "sgd_var": (Dimension("lr_scaling", 0.01, 1.0),),
    "sgdn_var": (Dimension("lr_scaling", 0.01, 1.0),), "rmsprop_var": (Dimension("lr_scaling", 0.01, 1.0),),
    "adagrad_var": (Dimension("lr_scaling", 0.01, 1.0),),
}  # fmt: skip
"""Each registry name's hyperparameters besides the lr (always log-uniform over the sweep's range)."""


LR_FREE_LR = Dimension("lr", 0.1, 10.0)
"""A learning-rate-free method's lr multiplies the step size it estimates: searched around its 1."""


def search_space(spec: str, lr_low: float, high: float) -> tuple[Dimension, ...]:
    """``spec``'s sampled dimensions: the lr first (a decade either side of 1 for a learning-rate-free
    method), then the declared ones the spec leaves open."""
    name, values = parse_spec(spec)
    declared = SEARCH_SPACES.get(name, ())
    lr = LR_FREE_LR if optimizer_info(spec).get("lr_free", False) else Dimension("lr", lr_low, high)
    return (lr, *(d for d in declared if d.name not in values))


def sobol_trials(space: tuple[Dimension, ...], trials: int, seed: int = SOBOL_SEED) -> list[dict[str, float]]:
    """The first ``trials`` points of the seeded scrambled Sobol sequence, mapped onto ``space``.

    Raises:
        ValueError: ``trials`` < 1.
    """
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    sampler = qmc.Sobol(d=len(space), scramble=True, seed=np.random.default_rng(seed))
    with warnings.catch_warnings():  # balance needs a power of 2; any K is allowed, the prefix is still low-discrepancy
        warnings.simplefilter("ignore", UserWarning)
        units = sampler.random(trials)
    return [{dim.name: dim.value(float(u)) for dim, u in zip(space, row)} for row in units]


@dataclass
class BudgetTuner:
    """K Sobol trials of ``label`` on every tuning seed, then the best trial."""

    scoring: Scoring
    label: str
    trials: int
    plan: Planner
    lr_low: float
    lr_high: float
    _points: list[dict[str, float]] = field(default_factory=list)
    _runs: dict[str, int] = field(default_factory=dict)  # run id -> trial index
    _scores: dict[int, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.space = search_space(self.label, self.lr_low, self.lr_high)
        self._points = sobol_trials(self.space, self.trials)

    def trial_spec(self, index: int) -> str:
        """Trial ``index``'s optimizer spec (its sampled hyperparameters but the lr)."""
        name, values = parse_spec(self.label)
        sampled = {k: v for k, v in self._points[index].items() if k != "lr"}
        return format_spec(name, {**values, **sampled})

    def pending(self) -> list[RunConfig]:
        if self._runs:
            return []
        runs = []
        for index, point in enumerate(self._points):
            planned = self.plan(self.label, point["lr"], self.scoring.tuning_seeds, "tune", ((TRIAL_KEY, index),),
                                spec=self.trial_spec(index))  # fmt: skip
            self._runs.update({run.run_id: index for run in planned})
            runs.extend(planned)
        return runs

    def update(self, runs: pd.DataFrame) -> None:
        mine = runs[runs["run_id"].isin(self._runs)].copy()
        mine[TRIAL_KEY] = mine["run_id"].map(self._runs)
        self._scores = point_scores(mine, TRIAL_KEY, self.scoring.metric, self.scoring.higher_is_better)
        if len(self._scores) != self.trials:
            raise RuntimeError(f"{self.trials - len(self._scores)} trials of {self.label!r} on "
                               f"{self.scoring.task!r} have no recorded run")  # fmt: skip

    @property
    def done(self) -> bool:
        return bool(self._scores)

    def selection(self) -> Selection:
        best = int(best_point(self._scores, self.scoring.higher_is_better))
        s = self.scoring
        searched = ", ".join(d.name for d in self.space)
        return Selection(task=s.task, label=s.label, protocol="budget", chosen_spec=self.trial_spec(best),
                         chosen_lr=self._points[best]["lr"], score=self._scores[best].mean,
                         tuning_seeds=s.tuning_seeds, final_seeds=s.final_seeds,
                         grid=tuple(p["lr"] for p in self._points),
                         stop_reason=f"best of {self.trials} Sobol trials over {searched}: trial {best}",
                         trials=self.trials)  # fmt: skip


def trial_of(extra: Any) -> int | None:
    """The trial index in a run's ``extra`` (``None`` for a grid or final run)."""
    for key, value in extra or ():
        if key == TRIAL_KEY:
            return int(value)
    return None

