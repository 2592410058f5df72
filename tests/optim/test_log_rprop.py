"""Rprop on log α and the trust-ratio cap: hand-computed steps in float64, the cap's bounds, state, errors."""

from __future__ import annotations

import math

import pytest
import torch

from gradretention.optim import ComposedOptimizer, create_optimizer, optimizer_info
from gradretention.optim.registry import resolved_hyperparameters
from tests.optim.log_alpha_checks import (
    LN2, QUADRATIC, THETA0, assert_frozen_law_is_nesterov, continue_from_state_dict, quadratic_loss, run,
)


def sign(x: float) -> float:
    return (x > 0) - (x < 0)


def hand_log_rprop(rule: str, alpha: float, eta: float, *, etas=(0.5, 1.2), sizes=(0.01, LN2),
                   offset: float = 0.0, tau: float | None = None, spike: float = 0.5, steps: int = 3,
                   mu: float = 0.9, rho: float = 0.9, k: float = 0.0, patience: int = 1, rho_u: float = 0.9):
    """Plain Python: the law of log_rprop's docstring (law, then spike, then cap) on the quadratic."""
    theta, previous, buffer, ema, last_sign, out = list(THETA0), None, None, None, 0, []
    m, q, n, spikes = 0.0, 0.0, 0, 0

    def direction_of(g, buf):
        if rule == "sgd":
            return g, buf
        buf = list(g) if buf is None else [mu * b + gi for b, gi in zip(buf, g)]
        return [gi + mu * b for gi, b in zip(g, buf)], buf

    for _ in range(steps):
        g = [a * t for a, t in zip(QUADRATIC, theta)]
        loss = 0.5 * sum(a * t * t for a, t in zip(QUADRATIC, theta))
        if previous is not None:
            x = sum(x * y for x, y in zip(g, previous)) / (math.hypot(*g) * math.hypot(*previous)) + offset
            s = sign(x)
            if k > 0:  # the dead zone: the running mean's sign, beyond k standard errors only
                n += 1
                m, q = rho_u * m + (1 - rho_u) * x, rho_u * q + (1 - rho_u) * x * x
                m_hat, q_hat = m / (1 - rho_u**n), q / (1 - rho_u**n)
                weights = [rho_u ** (n - i) for i in range(1, n + 1)]
                n_eff = sum(weights) ** 2 / sum(w * w for w in weights)
                se = math.sqrt(max(q_hat - m_hat**2, 0.0) / (n_eff - 1)) if n > 1 else math.inf
                s = sign(m_hat) if abs(m_hat) > k * se else 0
            agreement = s * last_sign
            eta *= etas[1] if agreement > 0 else etas[0] if agreement < 0 else 1.0
            eta = min(max(eta, sizes[0]), sizes[1])
            alpha *= math.exp(eta * s)
            last_sign = s
        spikes = spikes + 1 if ema is not None and loss > (1 + spike) * ema else 0
        if spikes >= patience:
            alpha *= 0.5
        ema = loss if ema is None else rho * ema + (1 - rho) * loss
        direction, buffer = direction_of(g, buffer)
        if tau is not None:  # ‖d_{t-1}‖, or ‖d_1‖ itself at the first step
            alpha = min(alpha, tau * math.hypot(*theta) / math.hypot(*(previous or direction)))
        theta = [t - alpha * d for t, d in zip(theta, direction)]
        previous = direction
        out.append((theta, alpha))
    return out


def make(rule: str, alpha: float, **kwargs) -> tuple[ComposedOptimizer, torch.Tensor]:
    theta = torch.tensor(THETA0, dtype=torch.float64, requires_grad=True)
    return ComposedOptimizer([theta], rule=rule, controller="log_rprop", lr=alpha, **kwargs), theta


CASES = [  # (rule, α₀, τ): small α₀ climbs, large α₀ overshoots (spike and sign flips), τ binds or not
    ("sgd", 0.01, None), ("sgd", 0.9, None), ("sgdn", 0.05, None), ("sgdn", 0.4, None),
    ("sgd", 5.0, 0.3), ("sgdn", 0.01, 0.3), ("sgdn", 2.0, 0.1),
]


@pytest.mark.parametrize("rule,alpha,tau", CASES)
def test_six_hand_computed_steps_on_a_quadratic(rule, alpha, tau):
    opt, theta = make(rule, alpha, hypergrad_lr=0.3, trust_ratio=tau)
    thetas, lrs = run(opt, theta, 6)
    expected = hand_log_rprop(rule, alpha, 0.3, tau=tau, steps=6)
    for got_theta, got_lr, (hand_theta, hand_lr) in zip(thetas, lrs, expected):
        assert got_theta == pytest.approx(hand_theta, rel=1e-12, abs=1e-14)
        assert got_lr == pytest.approx(hand_lr, rel=1e-12)


ZPROP_CASES = [  # (rule, α₀, k, P): the dead zone closed at first, opening as the mean builds; spikes in a row
    ("sgd", 0.01, 2.0, 2), ("sgd", 0.9, 1.0, 2), ("sgdn", 0.05, 2.0, 1), ("sgdn", 0.4, 0.5, 3), ("sgdn", 2.0, 2.0, 2),
]


@pytest.mark.parametrize("rule,alpha,k,patience", ZPROP_CASES)
def test_dead_zone_and_spike_patience_follow_the_hand_computation(rule, alpha, k, patience):
    opt, theta = make(rule, alpha, hypergrad_lr=0.3, significance=k, spike_patience=patience, trust_ratio=0.3)
    thetas, lrs = run(opt, theta, 10)
    expected = hand_log_rprop(rule, alpha, 0.3, tau=0.3, steps=10, k=k, patience=patience)
    for got_theta, got_lr, (hand_theta, hand_lr) in zip(thetas, lrs, expected):
        assert got_theta == pytest.approx(hand_theta, rel=1e-12, abs=1e-14)
        assert got_lr == pytest.approx(hand_lr, rel=1e-12)


def test_a_noise_signal_inside_the_dead_zone_rarely_moves_alpha():
    # Independent Gaussian gradients: cosines of mean 0 (sd ≈ 0.35 in 8-D). The plain sign law moves α at
    # every step; with k = 2 the running mean leaves ±2 standard errors only at a few steps.
    generator = torch.Generator().manual_seed(0)
    grads = torch.randn(300, 8, dtype=torch.float64, generator=generator)
    theta = torch.nn.Parameter(torch.zeros(8, dtype=torch.float64))
    moved = {}
    for k in (2.0, 0.0):
        opt = ComposedOptimizer([theta], rule="sgd", controller="log_rprop", lr=1e-3, significance=k, loss_spike=0.0)
        lrs = []
        for grad in grads:
            theta.grad = grad.clone()
            opt.step(loss=1.0)
            lrs.append(float(opt.param_groups[0]["lr"]))
        moved[k] = sum(b != a for a, b in zip(lrs, lrs[1:])) / (len(lrs) - 1)
    assert moved[0.0] == 1.0  # every step from the second (the first has no d_0)
    assert moved[2.0] < 0.1, moved


def test_spike_patience_halves_only_on_consecutive_spikes():
    theta = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    for patience, halvings in ((1, 3), (2, 1), (3, 0)):
        opt = create_optimizer("adam_lrprop", [theta], lr=1e-3, hypergrad_lr=0.0, trust_ratio=None,
                               spike_patience=patience)
        for loss in (1.0, 2.0, 1.0, 2.0, 2.0, 1.0):  # spikes at steps 2, 4 and 5 (5: 2.0 > 1.5 · L̄ = 1.77)
            theta.grad = torch.ones_like(theta)
            opt.step(loss=loss)
        assert opt.param_groups[0].get("lr_halvings", 0) == halvings
        assert float(opt.param_groups[0]["lr"]) == 1e-3 * 0.5**halvings


def test_offset_and_other_factors_follow_the_same_law():
    opt, theta = make("sgdn", 0.02, hypergrad_lr=0.05, etas=(0.3, 1.5), step_sizes=(0.02, 0.5), cosine_offset=0.2)
    _, lrs = run(opt, theta, 8)
    hand = [a for _, a in hand_log_rprop("sgdn", 0.02, 0.05, etas=(0.3, 1.5), sizes=(0.02, 0.5), offset=0.2, steps=8)]
    assert lrs == pytest.approx(hand, rel=1e-12)


def test_step_grows_by_eta_plus_while_the_sign_persists_then_shrinks_on_a_flip():
    opt, theta = make("sgd", 1e-4, hypergrad_lr=0.1)
    run(opt, theta, 4)  # α tiny: successive gradients agree, s = +1 at steps 2, 3, 4
    group = opt.param_groups[0]
    assert float(group["lr_step"]) == pytest.approx(0.1 * 1.2**2, rel=1e-12)  # first sign: no agreement yet
    assert float(group["lr"]) == pytest.approx(1e-4 * math.exp(0.1 + 0.12 + 0.144), rel=1e-12)
    opt, theta = make("sgd", 0.6, hypergrad_lr=0.1, loss_spike=0.0)  # 0.6 > 2/3? no: 0.6·3 = 1.8 flips θ_2
    run(opt, theta, 3)
    assert float(opt.param_groups[0]["lr_sign"]) == -1.0


def test_alpha0_above_the_cap_gives_one_trajectory_bit_for_bit():
    runs = []
    for alpha in (10.0, 1e3, 1e6):
        opt, theta = make("sgdn", alpha, trust_ratio=0.1)
        runs.append(run(opt, theta, 20))
    assert runs[0] == runs[1] == runs[2]
    first = runs[0][0][0]
    moved = math.dist(first, THETA0)
    assert moved == pytest.approx(0.1 * math.hypot(*THETA0), rel=1e-12)  # the first step moves θ by τ‖θ₀‖


def test_capped_steps_are_counted_and_reported():
    # SGD, law off: α_t = min(α_{t-1}, τ‖θ‖/‖g_{t-1}‖) (‖g_1‖ at step 1); count the steps where the min binds.
    opt, theta = make("sgd", 100.0, trust_ratio=0.1, hypergrad_lr=0.0, loss_spike=0.0)
    thetas, lrs = run(opt, theta, 6)
    alpha, count, points = 100.0, 0, [list(THETA0), *thetas]
    for t in range(6):
        grad_of = points[t - 1] if t else points[0]
        cap = 0.1 * math.hypot(*points[t]) / math.hypot(*(a * x for a, x in zip(QUADRATIC, grad_of)))
        count += alpha > cap
        alpha = min(alpha, cap)
        assert lrs[t] == pytest.approx(alpha, rel=1e-12)
    assert 1 < count < 6  # the cap rises as θ turns to the flat axis: it stops binding
    assert opt.telemetry()["lr_capped/g0"] == count
    opt, theta = make("sgd", 1e-3, trust_ratio=0.1, hypergrad_lr=0.0)
    run(opt, theta, 5)
    assert opt.telemetry()["lr_capped/g0"] == 0.0


def test_zero_parameters_are_not_frozen_by_the_cap():
    theta = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = create_optimizer("sgdn_lrprop", [theta], lr=0.1, trust_ratio=0.05)
    opt.zero_grad()
    (theta - torch.tensor([1.0, 1.0], dtype=torch.float64)).square().sum().backward()
    opt.step(loss=2.0)
    assert theta.tolist() == pytest.approx([0.1 * 1.9 * 2] * 2, rel=1e-12)  # ‖θ‖ = 0: no cap, α₀ = 0.1


@pytest.mark.parametrize("alpha", [1e-5, 1e-3, 0.1, 10.0, 1e4])
def test_defaults_converge_from_alpha0_nine_decades_apart(alpha):
    opt, theta = make("sgdn", alpha, trust_ratio=0.05)
    run(opt, theta, 300)
    assert float(quadratic_loss(theta.detach())) < 1e-8


def test_state_dict_continues_bit_for_bit():
    opt, resumed = continue_from_state_dict("adam_lrprop", 4, 4, lr=0.3)
    assert opt.telemetry() == resumed.telemetry()


def test_zero_step_keeps_alpha_and_reproduces_the_base_rule_exactly():
    opt, theta = make("sgdn", 0.05, hypergrad_lr=0.0, loss_spike=0.0)
    assert_frozen_law_is_nesterov(opt, theta, 0.05)


@pytest.mark.parametrize("key,value,valid", [
    ("etas", (1.2, 0.5), r"\(etaminus, etaplus\) with 0 < etaminus < 1 < etaplus"),
    ("step_sizes", (0.5, 0.1), r"\(low, high\) with 0 < low <= high"),
    ("step_sizes", (0.0, 0.1), r"\(low, high\) with 0 < low <= high"),
    ("trust_ratio", -0.1, r"None \(no cap\) or > 0"),
    ("trust_ratio", 0.0, r"None \(no cap\) or > 0"),
])
def test_bad_values_are_refused_naming_the_value_and_the_range(key, value, valid):
    with pytest.raises(ValueError, match=rf"Invalid {key} value: {re_escape(value)} \(valid: {valid}\)"):
        create_optimizer("adam_lrprop", [torch.nn.Parameter(torch.zeros(2))], **{key: value})


def re_escape(value: object) -> str:
    import re  # noqa: PLC0415

    return re.escape(repr(value))


def test_adam_lrprop_defaults_to_spike_patience_two_and_patience_one_is_the_former_row():
    # The registry row (issue 19) equals an explicit spike_patience=2 construction bit for bit; spike_patience=1
    # reproduces the former row (the controller's class default, no patience), which the README's tables label
    # ``adam_lrprop[spike_patience=1]``. sgdn_lrprop keeps the class default (1).
    def trajectory(build) -> tuple[list[torch.Tensor], list[float], int]:
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 3).double()
        generator = torch.Generator().manual_seed(2)
        opt = build(net.parameters())
        lrs = []
        for step in range(30):  # noisy batches with a few loss jumps, so that the guard's patience matters
            inputs = torch.randn(8, 4, dtype=torch.float64, generator=generator) * (3.0 if step % 7 == 6 else 1.0)
            opt.zero_grad()
            loss = net(inputs).pow(2).mean()
            loss.backward()
            opt.step(loss=loss)
            lrs.append(float(opt.param_groups[0]["lr"]))
        return [p.detach().clone() for p in net.parameters()], lrs, opt.param_groups[0].get("lr_halvings", 0)

    def same(a, b) -> bool:
        return a[1] == b[1] and a[2] == b[2] and all(torch.equal(x, y) for x, y in zip(a[0], b[0]))

    assert optimizer_info("adam_lrprop")["defaults"]["spike_patience"] == 2
    assert optimizer_info("sgdn_lrprop")["defaults"]["spike_patience"] == 1
    default = trajectory(lambda params: create_optimizer("adam_lrprop", params, lr=0.5))
    explicit = trajectory(lambda params: create_optimizer("adam_lrprop[spike_patience=2]", params, lr=0.5))
    former = trajectory(lambda params: create_optimizer("adam_lrprop[spike_patience=1]", params, lr=0.5))
    # The former row: the same settings without the key, i.e. the controller's own default (P = 1).
    settings = {k: v for k, v in resolved_hyperparameters("adam_lrprop").items() if k not in ("spike_patience", "lr")}
    former_row = trajectory(lambda params: ComposedOptimizer(params, rule="adam", controller="log_rprop", lr=0.5,
                                                             **settings))
    assert same(default, explicit) and same(former, former_row)
    assert former[2] > default[2]  # lone jumps on this stream halve α under P = 1 only
    assert default[1] != former[1]
