"""Log-α hypergradient controller: hand-computed steps, the safeguard, robustness to α₀, errors."""

from __future__ import annotations

import math

import pytest
import torch

from gradretention.optim import ComposedOptimizer, create_optimizer
from tests.optim.log_alpha_checks import (
    QUADRATIC, continue_from_state_dict, hand_direction, quadratic_loss, run,
)


def hand_log_hd(rule: str, alpha: float, beta: float, offset: float, spike: float, steps: int = 3,
                mu: float = 0.9, rho: float = 0.9, tau: float | None = None):
    """Plain Python: the law of the module docstring over SGD or Nesterov SGD on the quadratic."""
    theta, previous, buffer, ema, out = [1.0, -2.0], None, None, None, []
    for _ in range(steps):
        g = [a * t for a, t in zip(QUADRATIC, theta)]
        loss = 0.5 * sum(a * t * t for a, t in zip(QUADRATIC, theta))
        if previous is not None:
            cosine = sum(x * y for x, y in zip(g, previous)) / (math.hypot(*g) * math.hypot(*previous))
            alpha *= math.exp(beta * (cosine + offset))
        if ema is not None and loss > (1 + spike) * ema:
            alpha *= 0.5
        ema = loss if ema is None else rho * ema + (1 - rho) * loss
        direction, buffer = hand_direction(rule, g, buffer, mu)
        if tau is not None:  # the trust cap: τ‖θ‖ over ‖d_{t-1}‖ (‖d_1‖ at the first step)
            alpha = min(alpha, tau * math.hypot(*theta) / math.hypot(*(previous or direction)))
        theta = [t - alpha * d for t, d in zip(theta, direction)]
        previous = direction
        out.append((theta, alpha))
    return out


CASES = [  # (rule, α₀): 0.1 moves α by the cosine only; 0.9 overshoots, so the loss spikes at step 2
    ("sgd", 0.1), ("sgd", 0.9), ("sgdn", 0.05), ("sgdn", 0.4),
]


@pytest.mark.parametrize("rule,alpha", CASES)
def test_three_hand_computed_steps_on_a_quadratic(rule, alpha):
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = ComposedOptimizer([theta], rule=rule, controller="log_hypergradient", lr=alpha, hypergrad_lr=0.1,
                            cosine_offset=0.1, loss_spike=0.5)
    thetas, lrs = run(opt, theta, 3)
    for (got_theta, got_lr), (hand_theta, hand_lr) in zip(zip(thetas, lrs), hand_log_hd(rule, alpha, 0.1, 0.1, 0.5)):
        assert got_theta == pytest.approx(hand_theta, rel=1e-12, abs=1e-14)
        assert got_lr == pytest.approx(hand_lr, rel=1e-12)
    assert lrs[0] == alpha  # no d_0 and no loss history: the first step runs at α₀


@pytest.mark.parametrize("rule,alpha,tau", [("sgd", 3.0, 0.2), ("sgdn", 0.05, 0.05), ("sgdn", 10.0, 0.1)])
def test_trust_cap_follows_the_hand_computation(rule, alpha, tau):
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = ComposedOptimizer([theta], rule=rule, controller="log_hypergradient", lr=alpha, trust_ratio=tau)
    thetas, lrs = run(opt, theta, 6)
    for got_theta, got_lr, (hand_theta, hand_lr) in zip(thetas, lrs, hand_log_hd(rule, alpha, 0.1, 0.1, 0.5, 6, tau=tau)):
        assert got_theta == pytest.approx(hand_theta, rel=1e-12, abs=1e-14)
        assert got_lr == pytest.approx(hand_lr, rel=1e-12)
    assert opt.telemetry()["lr_capped/g0"] >= 1  # every case starts above or reaches the cap


def test_safeguard_halves_alpha_when_the_loss_jumps():
    # θ0 = (1, -2), α0 = 0.9: θ1 = (0.1, 3.4), L1 = 17.345 > 1.5·L0 = 9.75, and g2·g1 < 0.
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = create_optimizer("sgdn_loghd", [theta], lr=0.9, momentum=0.0)
    _, lrs = run(opt, theta, 2)
    assert opt.param_groups[0]["lr_halvings"] == 1
    cosine = (0.1 * 1 - 10.2 * 6) / (math.hypot(0.1, 10.2) * math.hypot(1, 6))
    assert lrs[1] == pytest.approx(0.9 * math.exp(0.1 * (cosine + 0.1)) * 0.5, rel=1e-12)


def test_a_non_finite_loss_halves_alpha_and_stays_out_of_the_average():
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = create_optimizer("adam_loghd", [theta], lr=0.01)
    for loss in (2.0, float("nan")):
        theta.grad = torch.ones_like(theta)
        opt.step(loss=loss)
    group = opt.param_groups[0]
    assert group["loss_ema"] == 2.0 and group["lr_halvings"] == 1
    assert float(group["lr"]) == pytest.approx(0.01 * math.exp(0.1 * (1.0 + 0.1)) * 0.5, rel=1e-12)


@pytest.mark.parametrize("alpha", [1e-5, 1e-3, 0.1, 10.0])
def test_same_beta_converges_from_alpha0_six_decades_apart(alpha):
    # Fixed-α SGD diverges above 2/3 on this quadratic and barely moves at 1e-5 in 300 steps.
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = create_optimizer("sgdn_loghd", [theta], lr=alpha)
    run(opt, theta, 300)
    assert float(quadratic_loss(theta.detach())) < 1e-8


def test_loss_spike_zero_and_no_loss_leave_the_cosine_law_alone():
    results = []
    for kwargs, pass_loss in (({"loss_spike": 0.0}, True), ({}, False)):
        theta = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
        opt = create_optimizer("sgdn_loghd", [theta], lr=0.9, momentum=0.0, **kwargs)
        for _ in range(3):
            opt.zero_grad()
            loss = quadratic_loss(theta)
            loss.backward()
            opt.step(loss=loss) if pass_loss else opt.step()
        assert "lr_halvings" not in opt.param_groups[0]
        results.append(float(opt.param_groups[0]["lr"]))
    assert results[0] == results[1]


def test_state_dict_continues_bit_for_bit_with_the_loss_average():
    opt, resumed = continue_from_state_dict("sgdn_loghd", 3, 3, lr=0.05)
    assert float(opt.param_groups[0]["lr"]) == float(resumed.param_groups[0]["lr"])
    assert opt.param_groups[0]["loss_ema"] == resumed.param_groups[0]["loss_ema"]


@pytest.mark.parametrize("key,value,valid", [("cosine_offset", -0.1, r"in \[0, 1\]"),
                                             ("loss_spike", -1.0, ">= 0"),
                                             ("loss_smoothing", 1.0, r"in \[0, 1\)")])
def test_bad_values_are_refused_naming_the_value_and_the_range(key, value, valid):
    with pytest.raises(ValueError, match=rf"Invalid {key} value: {value!r} \(valid: {valid}\)"):
        create_optimizer("adam_loghd", [torch.nn.Parameter(torch.zeros(2))], **{key: value})
