"""RMS-normalised and stacked log-α hypergradient: hand-computed steps in float64, κ's law, state, errors."""

from __future__ import annotations

import math

import pytest
import torch

from gradretention.optim import ComposedOptimizer, create_optimizer
from tests.optim.log_alpha_checks import (
    LN2, QUADRATIC, THETA0, assert_frozen_law_is_nesterov, continue_from_state_dict, hand_direction,
    quadratic_loss, run,
)


def hand_rms_law(rule: str, alpha: float, beta: float, *, gamma: float = 0.0, sizes=(0.01, LN2), k: float = 0.0,
                 tau: float | None = None, spike: float = 0.5, patience: int = 1, steps: int = 3,
                 mu: float = 0.9, rho: float = 0.9, rho_u: float = 0.9):
    """Plain Python: the module docstring's law (κ, then α, then spike, then cap) on the quadratic."""
    theta, previous, buffer, ema, out = list(THETA0), None, None, None, []
    kappa, last_signal, m, q, n, spikes = beta, 0.0, 0.0, 0.0, 0, 0
    for _ in range(steps):
        g = [a * t for a, t in zip(QUADRATIC, theta)]
        loss = 0.5 * sum(a * t * t for a, t in zip(QUADRATIC, theta))
        if previous is not None:
            u = sum(x * y for x, y in zip(g, previous)) / (math.hypot(*g) * math.hypot(*previous))
            n += 1
            m, q = rho_u * m + (1 - rho_u) * u, rho_u * q + (1 - rho_u) * u * u
            m_hat, q_hat = m / (1 - rho_u**n), q / (1 - rho_u**n)
            normalised = u / math.sqrt(q_hat)
            signal = normalised
            if k > 0:
                weights = [rho_u ** (n - i) for i in range(1, n + 1)]
                n_eff = sum(weights) ** 2 / sum(w * w for w in weights)
                se = math.sqrt(max(q_hat - m_hat**2, 0.0) / (n_eff - 1)) if n > 1 else math.inf
                signal = m_hat / math.sqrt(q_hat) if abs(m_hat) > k * se else 0.0
            if gamma > 0:
                kappa = min(max(kappa * math.exp(gamma * normalised * last_signal), sizes[0]), sizes[1])
            alpha *= math.exp(kappa * signal)
            last_signal = signal
        is_spike = ema is not None and loss > (1 + spike) * ema
        spikes = spikes + 1 if is_spike else 0
        if spikes >= patience:
            alpha *= 0.5
        ema = loss if ema is None else rho * ema + (1 - rho) * loss
        direction, buffer = hand_direction(rule, g, buffer, mu)
        if tau is not None:  # ‖d_{t-1}‖, or ‖d_1‖ itself at the first step
            alpha = min(alpha, tau * math.hypot(*theta) / math.hypot(*(previous or direction)))
        theta = [t - alpha * d for t, d in zip(theta, direction)]
        previous = direction
        out.append((theta, alpha, kappa))
    return out


def make(rule: str, alpha: float, **kwargs) -> tuple[ComposedOptimizer, torch.Tensor]:
    theta = torch.tensor(THETA0, dtype=torch.float64, requires_grad=True)
    return ComposedOptimizer([theta], rule=rule, controller="log_rms_hypergradient", lr=alpha, **kwargs), theta


CASES = [  # (rule, α₀, options): small α₀ climbs, large α₀ overshoots (spike, sign flips), the cap binds or not
    ("sgd", 0.01, {}), ("sgd", 0.9, {}), ("sgdn", 0.05, {}), ("sgdn", 0.4, {}),
    ("sgd", 0.01, {"gamma": 0.2}), ("sgdn", 0.4, {"gamma": 0.5, "sizes": (0.05, 0.3)}),
    ("sgdn", 0.02, {"gamma": 0.2, "k": 1.0}), ("sgd", 0.9, {"k": 0.5, "patience": 2}),
    ("sgd", 5.0, {"tau": 0.3, "gamma": 0.2}), ("sgdn", 2.0, {"tau": 0.1, "k": 2.0}),
]
KEYWORDS = {"gamma": "hyper_hypergrad_lr", "sizes": "step_sizes", "k": "significance", "tau": "trust_ratio",
            "patience": "spike_patience"}


@pytest.mark.parametrize("rule,alpha,options", CASES)
def test_eight_hand_computed_steps_on_a_quadratic(rule, alpha, options):
    opt, theta = make(rule, alpha, hypergrad_lr=0.3, **{KEYWORDS[key]: value for key, value in options.items()})
    thetas, lrs = run(opt, theta, 8)
    expected = hand_rms_law(rule, alpha, 0.3, steps=8, **options)
    for got_theta, got_lr, (hand_theta, hand_lr, _) in zip(thetas, lrs, expected):
        assert got_theta == pytest.approx(hand_theta, rel=1e-12, abs=1e-14)
        assert got_lr == pytest.approx(hand_lr, rel=1e-12)
    assert float(opt.param_groups[0]["lr_step"]) == pytest.approx(expected[-1][2], rel=1e-12)


def test_kappa_moves_only_when_stacked_and_stays_within_its_bounds():
    opt, theta = make("sgd", 1e-4, hypergrad_lr=0.1)
    run(opt, theta, 10)
    assert float(opt.param_groups[0]["lr_step"]) == 0.1  # γ = 0: the plain RMS-normalised law
    opt, theta = make("sgd", 1e-4, hypergrad_lr=0.1, hyper_hypergrad_lr=0.2)
    run(opt, theta, 10)  # tiny α: u ≈ 1 at every step, so ũ_t ũ_{t-1} ≈ 1 and κ grows by ≈ e^0.2 per step
    kappa = float(opt.param_groups[0]["lr_step"])
    assert 0.1 * math.exp(0.2 * 8 * 0.99) < kappa <= LN2


def test_a_consistent_signal_climbs_kappa_per_step_whatever_its_size():
    # With u constant, ũ = u/√q̂ = 1 exactly: log α grows by β per step for any size of u.
    opt, theta = make("sgd", 1e-6, hypergrad_lr=0.1)
    _, lrs = run(opt, theta, 6)
    assert [math.log(b / a) for a, b in zip(lrs[1:], lrs[2:])] == pytest.approx([0.1] * 4, rel=1e-6)


@pytest.mark.parametrize("name", ["sgdn_rmshd", "sgdn_stackhd", "sgdn_zprop"])
@pytest.mark.parametrize("alpha", [1e-5, 1e-3, 0.1, 10.0, 1e4])
def test_defaults_converge_from_alpha0_nine_decades_apart(name, alpha):
    theta = torch.tensor(THETA0, dtype=torch.float64, requires_grad=True)
    opt = create_optimizer(name, [theta], lr=alpha)
    run(opt, theta, 400)
    assert float(quadratic_loss(theta.detach())) < 1e-8


@pytest.mark.parametrize("name", ["adam_rmshd", "adam_stackhd", "adam_zprop"])
def test_state_dict_continues_bit_for_bit(name):
    opt, resumed = continue_from_state_dict(name, 5, 5, lr=0.3, significance=1.0)
    assert opt.telemetry() == resumed.telemetry()


def test_zero_beta_keeps_alpha_and_reproduces_the_base_rule_exactly():
    opt, theta = make("sgdn", 0.05, hypergrad_lr=0.0, loss_spike=0.0, hyper_hypergrad_lr=0.2)
    assert_frozen_law_is_nesterov(opt, theta, 0.05)


@pytest.mark.parametrize("key,value,valid", [
    ("hyper_hypergrad_lr", -0.1, ">= 0"),
    ("significance", -1.0, ">= 0"),
    ("signal_smoothing", 1.0, r"in \[0, 1\)"),
    ("spike_patience", 0, "an integer >= 1"),
    ("spike_patience", 1.5, "an integer >= 1"),
    ("step_sizes", (0.5, 0.1), r"\(low, high\) with 0 < low <= high"),
])
@pytest.mark.parametrize("name", ["adam_rmshd", "adam_stackhd"])
def test_bad_values_are_refused_naming_the_value_and_the_range(name, key, value, valid):
    with pytest.raises(ValueError, match=rf"Invalid {key} value: {re_escape(value)} \(valid: {valid}\)"):
        create_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], **{key: value})


def re_escape(value: object) -> str:
    import re  # noqa: PLC0415

    return re.escape(repr(value))
