"""Shared checks for the model-zoo tests."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch
from torch import nn


def _loss_after_adam_steps(
    model: nn.Module,
    inputs: Any,
    targets: torch.Tensor,
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor] = nn.functional.cross_entropy,
    steps: int = 5,
    lr: float = 1e-3,
    eval_mode: bool = True,
) -> tuple[float, float]:
    """Loss on one fixed batch before and after ``steps`` Adam steps on it.

    Measured in eval mode by default so dropout noise cannot fake (or hide) progress.
    """

    def measure() -> float:
        model.train(not eval_mode)
        with torch.no_grad():
            outputs = model(**inputs) if isinstance(inputs, dict) else model(inputs)
            return float(loss_fn(outputs, targets))

    before = measure()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        outputs = model(**inputs) if isinstance(inputs, dict) else model(inputs)
        loss_fn(outputs, targets).backward()
        optimizer.step()
    return before, measure()


@pytest.fixture
def loss_before_after() -> Callable[..., tuple[float, float]]:
    torch.manual_seed(0)
    return _loss_after_adam_steps


