"""The records that flow from the runner to the store, statistics and report.

These frozen dataclasses are the single contract between the runner (producer) and
every consumer (results store, statistics, plots, GUI, TensorBoard). The store keeps
one row per :class:`RunResult` and one row per :class:`CurvePoint`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

RunStatus = Literal["done", "diverged", "error", "interrupted"]
RUN_STATUSES: tuple[str, ...] = ("done", "diverged", "error", "interrupted")
Phase = Literal["tune", "final", "single"]


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run; its hash is the run id.

    ``optimizer`` is the parametrized spec string (``"adam_hd[lr=0.001]"``); ``lr`` is the
    initial learning rate passed as an override (``None``: the spec's own or the default).
    ``seed`` drives model init and batch order; ``data_seed`` the train/val/test split.
    ``label`` is the optimizer as the user named it in a sweep (``"adam"``, whose final runs
    train ``optimizer="adam"`` at the picked lr; empty: ``optimizer`` itself), so that every
    run can be attributed to the selection that planned it.
    """

    task: str
    optimizer: str
    seed: int = 0
    lr: float | None = None
    data_seed: int = 0
    epochs: int | None = 5
    max_steps: int | None = None
    batch_size: int | None = None
    log_every: int = 10
    phase: Phase = "single"
    device: str = "cpu"
    extra: tuple[tuple[str, Any], ...] = ()
    label: str = ""

    @property
    def run_id(self) -> str:
        """Stable 16-hex-digit id: the same config always maps to the same id."""
        payload = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)


@dataclass(frozen=True)
class CurvePoint:
    """One logged scalar: ``split`` in train|val|test|opt|grad; ``name`` e.g. loss, accuracy, lr."""

    step: int
    epoch: float
    split: str
    name: str
    value: float
    group: int | None = None


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run. ``final`` holds flat metrics such as ``test_accuracy``."""

    config: RunConfig
    status: RunStatus
    reason: str = ""
    final: dict[str, float] = field(default_factory=dict)
    eval: dict[str, float] = field(default_factory=dict)
    curves: tuple[CurvePoint, ...] = ()
    steps: int = 0
    epochs_completed: float = 0.0
    wall_seconds: float = 0.0
    steps_to_target: int | None = None
    seconds_to_target: float | None = None
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.config.run_id
