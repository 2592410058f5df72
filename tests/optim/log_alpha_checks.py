"""What the log-α controller tests share: the quadratic they step on, its loop, and the state_dict continuation check."""

from __future__ import annotations

import copy
import math

import torch

from gradretention.optim import ComposedOptimizer, create_optimizer

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


def continue_from_state_dict(spec: str, before: int, after: int,
                             **overrides: object) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Train, save, train on; rebuild from the saved states and train on: the params must agree bit for bit.

    A float64 linear model on a fixed batch, the loss passed to ``step`` (the spike halving reads
    it). Returns the uninterrupted optimizer and the resumed one, for the caller's own checks.
    """
    inputs = torch.randn(16, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def model() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Linear(4, 2).double()

    def steps(net: torch.nn.Module, opt: torch.optim.Optimizer, n: int) -> None:
        for _ in range(n):
            opt.zero_grad()
            loss = net(inputs).pow(2).mean()
            loss.backward()
            opt.step(loss=loss)

    net = model()
    opt = create_optimizer(spec, net.parameters(), **overrides)
    steps(net, opt, before)
    saved_net, saved_opt = copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict())
    steps(net, opt, after)
    resumed = model()
    resumed.load_state_dict(saved_net)
    resumed_opt = create_optimizer(spec, resumed.parameters(), **overrides)
    resumed_opt.load_state_dict(saved_opt)
    steps(resumed, resumed_opt, after)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), resumed.parameters()))
    return opt, resumed_opt


def hand_direction(rule: str, g: list[float], buffer: list[float] | None,
                   mu: float) -> tuple[list[float], list[float] | None]:
    """Plain Python d_t of the base rule: g for SGD; g + μb with b ← μb + g for Nesterov SGD. Returns (d_t, b)."""
    if rule == "sgd":
        return g, buffer
    buffer = list(g) if buffer is None else [mu * b + gi for b, gi in zip(buffer, g)]
    return [gi + mu * b for gi, b in zip(g, buffer)], buffer


def assert_frozen_law_is_nesterov(opt: torch.optim.Optimizer, theta: torch.Tensor, lr: float) -> None:
    """With its law off, the controller's optimizer steps exactly as plain Nesterov SGD at ``lr`` and keeps α."""
    reference = theta.detach().clone().requires_grad_(True)
    base = ComposedOptimizer([reference], rule="sgdn", lr=lr)
    run(opt, theta, 5)
    run(base, reference, 5)
    assert torch.equal(theta, reference)
    assert float(opt.param_groups[0]["lr"]) == lr
