"""What flows between the GUI's training thread and its window, besides the runner's events.

The worker emits the bench events (:class:`~gradretention.bench.events.RunStarted`,
``StepLogged``, ``EvalLogged``, ``RunFinished``) plus the GUI-only events below; the
window sends the commands below back. All are frozen dataclasses, so a message can cross
the thread boundary without being changed on the way.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradretention.bench.events import Event
from gradretention.bench.results import RunConfig


@dataclass(frozen=True)
class OptimizerTraits:
    """What the window's controls can do with optimizer ``spec`` (probed once, before training).

    ``lr`` is the spec's starting lr (group 0); ``per_element_lr``: it has
    ``effective_lr(p)`` (RescaledSGD's η bars); ``retention``: its groups carry
    ``base_lr`` and ``retain_min`` (the "Base lr" and "Retain minimum scaling" controls).
    """

    spec: str
    lr: float | None = None
    per_element_lr: bool = False
    retention: bool = False


@dataclass(frozen=True)
class SessionStarted:
    """A session of ``len(optimizers) * len(seeds)`` runs begins; ``layers`` can be watched.

    ``traits`` has one entry per optimizer (empty when the sender did not probe them).
    """

    task: str
    optimizers: tuple[str, ...]
    seeds: tuple[int, ...]
    total_steps: int
    layers: tuple[str, ...]
    traits: tuple[OptimizerTraits, ...] = ()


@dataclass(frozen=True)
class LayerSnapshot:
    """One step of the watched layer: its update, gradient and per-element lr (first elements).

    ``update`` is ``θ_after − θ_before``; ``effective_lr`` comes from the optimizer's
    ``effective_lr(p)`` (RescaledSGD's per-element η) and is ``None`` for optimizers
    that have one scalar lr per group.
    """

    config: RunConfig
    step: int
    layer: str
    update: tuple[float, ...]
    grad: tuple[float, ...]
    effective_lr: tuple[float, ...] | None


@dataclass(frozen=True)
class Notice:
    """A line for the status bar; ``refused`` marks a control the worker did not apply."""

    message: str
    refused: bool = False


@dataclass(frozen=True)
class SessionFinished:
    """The session ended: ``status`` is done, stopped or error (then ``message`` says why)."""

    status: str
    message: str = ""


GuiEvent = Event | SessionStarted | LayerSnapshot | Notice | SessionFinished


@dataclass(frozen=True)
class SetLr:
    """Set every group's ``lr`` (RescaledSGD: the peak) of the running optimizer."""

    value: float


@dataclass(frozen=True)
class SetBaseLr:
    """Set ``base_lr`` of the groups that have one (RescaledSGD); refused above the peak."""

    value: float


@dataclass(frozen=True)
class SetRetainMin:
    """Turn RescaledSGD's ``retain_min`` (per-element η between base and peak) on or off."""

    enabled: bool


@dataclass(frozen=True)
class SelectLayer:
    """Watch the parameter called ``name`` (as in ``model.named_parameters()``)."""

    name: str


Command = SetLr | SetBaseLr | SetRetainMin | SelectLayer
