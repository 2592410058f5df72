"""The quadratic the log-α controller tests step on, and the loop that records θ and α per step."""

from __future__ import annotations

import math

import torch

QUADRATIC = (1.0, 3.0)  # f(θ) = ½ Σ a_i θ_i², gradient a ⊙ θ
THETA0 = (1.0, -2.0)
LN2 = math.log(2)


def quadratic_loss(theta: torch.Tensor) -> torch.Tensor:
    return 0.5 * (torch.tensor(QUADRATIC, dtype=theta.dtype) * theta**2).sum()


def run(opt: torch.optim.Optimizer, theta: torch.Tensor, steps: int) -> tuple[list[list[float]], list[float]]:
    """``steps`` steps of ``opt`` on the quadratic (the loss passed to ``step``); θ and α after each."""
    thetas, lrs = [], []
    for _ in range(steps):
        opt.zero_grad()
        loss = quadratic_loss(theta)
        loss.backward()
        opt.step(loss=loss)
        thetas.append(theta.detach().tolist())
        lrs.append(float(opt.param_groups[0]["lr"]))
    return thetas, lrs
