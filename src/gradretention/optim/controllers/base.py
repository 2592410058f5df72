"""The learning-rate controller contract.

A controller computes this step's α for one param group **before** the parameters move,
and writes it to ``group["lr"]`` (so torch LR schedulers, which scale ``group["lr"]``,
compose with it). Its own state is a handful of scalars kept in the group dict, so it
round-trips through ``Optimizer.state_dict()`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor

from gradretention.optim.rules import BaseRule, Group


@dataclass(frozen=True)
class StepSignals:
    """What a controller may look at for one group at step t.

    ``grads`` are the effective gradients ``g_t`` (after coupled weight decay);
    ``loss`` the loss of this step when the caller passed one. For controllers that
    set ``needs_previous_direction``, the optimizer also reduces ``hypergradient``
    ``h_t = Σ⟨g_t, d_{t-1}⟩`` (None when no param has a d_{t-1}) and, for the
    multiplicative form, ``direction_scale = ‖g_t‖·‖d_{t-1}‖`` (else 1).
    """

    params: list[Tensor]
    grads: list[Tensor]
    loss: float | None
    hypergradient: Tensor | None = None
    direction_scale: Tensor | float = 1.0


class LRController(Protocol):
    name: str
    defaults: dict[str, Any]
    #: whether :class:`StepSignals.previous_directions` must be filled (costs a pass over memory).
    needs_previous_direction: bool
    #: whether α is adapted on the device: ``group["lr"]`` is then a float64 0-dim tensor on the
    #: params' device, read by the host only when asked (``telemetry()``, ``float(group["lr"])``).
    device_lr: bool

    def next_lr(self, group: Group, signals: StepSignals, rule: BaseRule) -> Any:
        """α_t (a float, or a 0-dim tensor with ``device_lr``); updates the controller scalars in ``group``."""
        ...

    def telemetry(self, group: Group) -> dict[str, float]:
        """The controller's scalars as plain floats, for logs and the GUI."""
        ...


class ConstantController:
    """α_t = α_{t-1}: the base rule as torch.optim runs it (schedulers still apply)."""

    name = "constant"
    defaults: dict[str, Any] = {}
    needs_previous_direction = False
    device_lr = False

    def next_lr(self, group: Group, signals: StepSignals, rule: BaseRule) -> Any:
        return group["lr"]

    def telemetry(self, group: Group) -> dict[str, float]:
        return {}
