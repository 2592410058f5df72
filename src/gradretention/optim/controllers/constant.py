"""The constant controller: α_t = α_{t-1}, the base rule as torch.optim runs it (schedulers still apply)."""

from __future__ import annotations

from typing import Any

from gradretention.optim.base import Group, Rule, StepSignals


class ConstantController:
    """α_t = α_{t-1}: ``group["lr"]`` as the user (or a scheduler) set it."""

    name = "constant"
    defaults: dict[str, Any] = {}
    needs_previous_direction = False
    needs_loss = False
    device_lr = False

    def next_lr(self, group: Group, signals: StepSignals, rule: Rule) -> Any:
        return group["lr"]

    def telemetry(self, group: Group) -> dict[str, float]:
        return {}


CONTROLLERS = {"constant": ConstantController}
"""The names this module serves (collected by :mod:`gradretention.optim.controllers`)."""
