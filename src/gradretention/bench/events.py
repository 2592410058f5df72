"""Events the runner emits; the store, progress bars, TensorBoard and the GUI listen.

No listener holds training logic: they only react to these frozen records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gradretention.bench.results import RunConfig, RunResult


@dataclass(frozen=True)
class RunStarted:
    config: RunConfig
    total_steps: int


@dataclass(frozen=True)
class StepLogged:
    """Train loss every ``log_every`` steps, with the lr per group and optimizer telemetry."""

    config: RunConfig
    step: int
    epoch: float
    loss: float
    lrs: tuple[float, ...]
    telemetry: dict[str, float] = field(default_factory=dict)
    grad_mean: float | None = None
    grad_var: float | None = None


@dataclass(frozen=True)
class EvalLogged:
    """Metrics of one split after an epoch, e.g. ``{"loss": 0.3, "accuracy": 0.91}``."""

    config: RunConfig
    step: int
    epoch: float
    split: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class RunFinished:
    result: RunResult


Event = RunStarted | StepLogged | EvalLogged | RunFinished


class Listener(Protocol):
    def __call__(self, event: Event) -> None: ...
