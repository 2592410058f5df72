"""Tasks that inject a numerical fault into a real training run at a chosen step.

Each is the spiral task with its model wrapped: at the ``at``-th training forward pass
the wrapper poisons either the output (a NaN or an infinite loss) or, through a
gradient hook on the first weight, the gradient (NaN or +inf) while the loss stays
finite. Evaluation passes are never poisoned. The tasks are registered only for the
duration of a test (:func:`registered`), so no other test sees them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator

import torch
from torch import nn

from gradretention.tasks.base import Task
from gradretention.tasks.registry import TASKS, get_task, register_task

FAULTS = ("nan_loss", "inf_loss", "nan_grad", "inf_grad")


class Faulty(nn.Module):
    """``inner`` whose ``at``-th training forward pass (1-based) carries ``fault``."""

    def __init__(self, inner: nn.Module, fault: str, at: int) -> None:
        super().__init__()
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; valid: {', '.join(FAULTS)}")
        self.inner, self.fault, self.at = inner, fault, at
        self.calls, self.poisoned = 0, False
        next(inner.parameters()).register_hook(self._gradient)

    def _gradient(self, grad: torch.Tensor) -> torch.Tensor:
        if not self.poisoned or not self.fault.endswith("_grad"):
            return grad
        return torch.full_like(grad, math.nan if self.fault == "nan_grad" else math.inf)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs = self.inner(inputs)
        if not self.training:
            return outputs
        self.calls += 1
        self.poisoned = self.calls == self.at
        if self.poisoned and self.fault == "nan_loss":
            return outputs * math.nan
        if self.poisoned and self.fault == "inf_loss":
            # Logits ±3e38 are finite, but the cross-entropy of a wrong class overflows to +inf.
            extreme = torch.full_like(outputs, -3e38)
            extreme[:, 0] = 3e38
            return outputs * 0 + extreme
        return outputs


def fault_task(fault: str, at: int) -> Task:
    """The spiral task whose model carries ``fault`` at training step ``at``."""
    spiral = get_task("spiral")
    return dataclasses.replace(spiral, name=f"spiral-{fault.replace('_', '-')}-at-{at}",
                               build_model=lambda classes: Faulty(spiral.build_model(classes), fault, at))  # fmt: skip


@contextlib.contextmanager
def registered(*tasks: Task) -> Iterator[tuple[Task, ...]]:
    """Register ``tasks`` for the ``with`` block only."""
    for task in tasks:
        register_task(task)
    try:
        yield tasks
    finally:
        for task in tasks:
            TASKS.pop(task.name, None)
