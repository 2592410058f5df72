"""Hypergradient family: hand-computed steps, the closed form against autograd, β = 0 equivalence."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from gradretention.optim import (
    SGDHD,
    SGDNHD,
    AdamHD,
    ComposedOptimizer,
    available_optimizers,
    create_optimizer,
    optimizer_info,
)
from tests.optim.conftest import make_regression_problem, regression_loss

# The hypergradient controller's names (its own hyperparameter `multiplicative`; log-α HD has its own tests).
HD_NAMES = [name for name in available_optimizers() if "multiplicative" in optimizer_info(name)["defaults"]]
QUADRATIC = (1.0, 3.0)  # f(θ) = ½ Σ a_i θ_i², gradient a ⊙ θ


def test_registry_has_seventeen_hypergradient_names_and_seven_baselines():
    names = available_optimizers()
    assert len(HD_NAMES) == 17  # 5 rules x {hd, hd_sgdn, hd_adam} + the HDM rows sgdn_hdm, adam_hdm
    for op in ("sgd", "sgdn", "adam", "adagrad", "rmsprop"):
        assert {f"{op}_hd", f"{op}_hd_sgdn", f"{op}_hd_adam"} <= set(names)
    for op in ("sgdn", "adam"):
        assert optimizer_info(f"{op}_hdm")["defaults"]["multiplicative"] is True
    assert {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"} <= set(names)


def quadratic_run(optimizer_factory, steps: int = 3) -> tuple[list[list[float]], list[float]]:
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = optimizer_factory([theta])
    thetas, lrs = [], []
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (torch.tensor(QUADRATIC, dtype=torch.float64) * theta**2).sum()).backward()
        opt.step()
        thetas.append(theta.detach().tolist())
        lrs.append(float(opt.param_groups[0]["lr"]))  # α is a device scalar: read its value now
    return thetas, lrs


def hand_gradient(theta: list[float]) -> list[float]:
    return [a * t for a, t in zip(QUADRATIC, theta)]


def dot(x: list[float], y: list[float]) -> float:
    return sum(a * b for a, b in zip(x, y))


def hand_sgd_hd(alpha: float, beta: float, lop: str, steps: int = 3):
    """Plain-Python SGD with HD (lop sgd or sgdn, μ_h = 0.9) on the quadratic."""
    theta, previous, buffer, out = [1.0, -2.0], None, 0.0, []
    for _ in range(steps):
        g = hand_gradient(theta)
        if previous is not None:
            h = dot(g, previous)
            if lop == "sgd":
                alpha += beta * h
            else:
                buffer = 0.9 * buffer + h
                alpha += beta * (h + 0.9 * buffer)
        theta = [t - alpha * gi for t, gi in zip(theta, g)]
        previous = g
        out.append((theta, alpha))
    return out


def hand_sgdn_hd(alpha: float, beta: float, mu: float, steps: int = 3):
    """Plain-Python Nesterov SGD with HD (lop sgd)."""
    theta, previous, momentum, out = [1.0, -2.0], None, None, []
    for _ in range(steps):
        g = hand_gradient(theta)
        if previous is not None:
            alpha += beta * dot(g, previous)
        momentum = list(g) if momentum is None else [mu * b + gi for b, gi in zip(momentum, g)]
        direction = [gi + mu * b for gi, b in zip(g, momentum)]
        theta = [t - alpha * d for t, d in zip(theta, direction)]
        previous = direction
        out.append((theta, alpha))
    return out


def hand_adam_hd(alpha: float, beta: float, lop: str, steps: int = 3):
    """Plain-Python Adam with HD (lop sgd or adam) on the quadratic, torch's ε placement."""
    b1, b2, eps = 0.9, 0.999, 1e-8
    theta, m, v, previous, out = [1.0, -2.0], [0.0, 0.0], [0.0, 0.0], None, []
    hm = hv = 0.0
    k = 0
    for t in range(1, steps + 1):
        g = hand_gradient(theta)
        if previous is not None:
            h = dot(g, previous)
            if lop == "sgd":
                alpha += beta * h
            else:
                k += 1
                hm = b1 * hm + (1 - b1) * h
                hv = b2 * hv + (1 - b2) * h * h
                alpha += beta * (hm / (1 - b1**k)) / (math.sqrt(hv / (1 - b2**k)) + 1e-8)
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
        direction = [(mi / (1 - b1**t)) / (math.sqrt(vi / (1 - b2**t)) + eps) for mi, vi in zip(m, v)]
        theta = [th - alpha * d for th, d in zip(theta, direction)]
        previous = direction
        out.append((theta, alpha))
    return out


HAND_CASES = [
    ("sgd_hd", {"lr": 0.1, "hypergrad_lr": 0.01}, lambda: hand_sgd_hd(0.1, 0.01, "sgd")),
    ("sgd_hd_sgdn", {"lr": 0.1, "hypergrad_lr": 0.01}, lambda: hand_sgd_hd(0.1, 0.01, "sgdn")),
    ("sgdn_hd", {"lr": 0.05, "hypergrad_lr": 0.01, "momentum": 0.5}, lambda: hand_sgdn_hd(0.05, 0.01, 0.5)),
    ("adam_hd", {"lr": 0.1, "hypergrad_lr": 0.01}, lambda: hand_adam_hd(0.1, 0.01, "sgd")),
    ("adam_hd_adam", {"lr": 0.1, "hypergrad_lr": 0.01}, lambda: hand_adam_hd(0.1, 0.01, "adam")),
]


@pytest.mark.parametrize("name,kwargs,hand", HAND_CASES, ids=[c[0] for c in HAND_CASES])
def test_three_hand_computed_steps_on_a_quadratic(name, kwargs, hand):
    thetas, lrs = quadratic_run(lambda p: create_optimizer(name, p, **kwargs))
    expected = hand()
    for (theta, lr), (hand_theta, hand_lr) in zip(zip(thetas, lrs), expected):
        assert theta == pytest.approx(hand_theta, rel=1e-12, abs=1e-14)
        assert lr == pytest.approx(hand_lr, rel=1e-12)
    assert lrs[0] == kwargs["lr"]  # h_1 = 0: the first step runs at α_0
    assert lrs[1] != lrs[0]


def test_sgd_hd_first_hypergradient_is_pinned_by_hand():
    # θ0 = (1, -2), a = (1, 3): g1 = (1, -6); θ1 = θ0 − 0.1 g1 = (0.9, -1.4); g2 = (0.9, -4.2)
    # h2 = g2·g1 = 0.9 + 25.2 = 26.1; α2 = 0.1 + 0.01·26.1 = 0.361
    _, lrs = quadratic_run(lambda p: SGDHD(p, lr=0.1, hypergrad_lr=0.01), steps=2)
    assert lrs[1] == pytest.approx(0.361, rel=1e-12)


@pytest.mark.parametrize("name", ["sgd_hd", "sgdn_hd", "adam_hd", "adagrad_hd", "rmsprop_hd"])
def test_closed_form_hypergradient_equals_autograd_derivative(name):
    """h_t = −∂f(θ_{t-1})/∂α_{t-1}, where θ_{t-1} = θ_{t-2} − α_{t-1} d_{t-1}."""
    model, inputs, targets = make_regression_problem()
    params = list(model.parameters())
    opt = create_optimizer(name, params, lr=0.01, hypergrad_lr=0.0)
    for _ in range(3):
        opt.zero_grad()
        regression_loss(model, inputs, targets).backward()
        opt.step()
    # The last step moved θ by −α·d; rebuild d from the step itself.
    before = [p.detach().clone() for p in params]
    opt.zero_grad()
    regression_loss(model, inputs, targets).backward()
    snapshot = copy.deepcopy(opt.state_dict())
    opt.step()
    alpha = opt.param_groups[0]["lr"]
    directions = [(b - p.detach()) / alpha for b, p in zip(before, params)]
    # Autograd: f(θ_before − a·d) differentiated w.r.t. a at a = α, then one more gradient.
    a = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
    functional = torch.func.functional_call
    names = [n for n, _ in model.named_parameters()]
    moved = {n: b - a * d for n, b, d in zip(names, before, directions)}
    loss = torch.nn.functional.mse_loss(functional(model, moved, (inputs,)), targets)
    (derivative,) = torch.autograd.grad(loss, a)
    # Now the optimizer's closed form at the next step (from the state after the last step).
    opt.zero_grad()
    regression_loss(model, inputs, targets).backward()
    opt.step()
    assert opt.param_groups[0]["hypergradient"] == pytest.approx(-float(derivative), rel=1e-9, abs=1e-15)
    assert snapshot["param_groups"][0]["lr"] == alpha


@pytest.mark.parametrize("name", HD_NAMES)
def test_zero_hypergrad_lr_reproduces_the_base_rule_exactly(name):
    rule = name.split("_hd")[0]
    model, inputs, targets = make_regression_problem()
    twin = copy.deepcopy(model)
    ours = create_optimizer(name, model.parameters(), lr=0.01, hypergrad_lr=0.0)
    base = ComposedOptimizer(twin.parameters(), rule=rule, lr=0.01)
    for _ in range(10):
        for net, opt in ((model, ours), (twin, base)):
            opt.zero_grad()
            regression_loss(net, inputs, targets).backward()
            opt.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)
    assert ours.param_groups[0]["lr"] == 0.01


def test_hd_lr_increases_when_gradients_align():
    # A linear objective: every gradient equals the previous direction, so h > 0.
    theta = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = SGDHD([theta], lr=0.01, hypergrad_lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        theta.sum().backward()
        opt.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 + 4 * 0.1 * 3)


def test_hd_lr_falls_when_steps_overshoot():
    theta = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = SGDHD([theta], lr=1.5, hypergrad_lr=0.01)  # α > 1 overshoots on ½θ²
    for _ in range(2):
        opt.zero_grad()
        (0.5 * theta**2).sum().backward()
        opt.step()
    assert opt.param_groups[0]["lr"] < 1.5


def test_lr_bounds_clamp_alpha():
    theta = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = SGDHD([theta], lr=0.01, hypergrad_lr=0.1, lr_bounds=(0.0, 0.05))
    for _ in range(5):
        opt.zero_grad()
        theta.sum().backward()
        opt.step()
    assert opt.param_groups[0]["lr"] == 0.05


def test_multiplicative_hdm_follows_the_paper_formula():
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = SGDHD([theta], lr=0.1, hypergrad_lr=0.02, multiplicative=True)
    for _ in range(2):
        opt.zero_grad()
        (0.5 * (torch.tensor(QUADRATIC, dtype=torch.float64) * theta**2).sum()).backward()
        opt.step()
    g1, g2 = [1.0, -6.0], [0.9, -4.2]
    cosine = dot(g1, g2) / (math.sqrt(dot(g1, g1)) * math.sqrt(dot(g2, g2)))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * (1 + 0.02 * cosine), rel=1e-12)


def test_adam_hd_keeps_exactly_adams_state():
    model, inputs, targets = make_regression_problem()
    opt = AdamHD(model.parameters(), lr=1e-3)
    for _ in range(3):
        opt.zero_grad()
        regression_loss(model, inputs, targets).backward()
        opt.step()
    for state in opt.state.values():
        tensors = {key for key, value in state.items() if isinstance(value, torch.Tensor)}
        assert tensors == {"exp_avg", "exp_avg_sq"}


@pytest.mark.parametrize("factory,buffers", [
    (lambda p: SGDHD(p), {"previous_direction"}),
    (lambda p: SGDHD(p, momentum=0.9), {"momentum_buffer"}),
    (lambda p: SGDNHD(p), {"momentum_buffer", "previous_direction"}),
    (lambda p: create_optimizer("adagrad_hd", p), {"sum", "previous_direction"}),
    (lambda p: create_optimizer("rmsprop_hd", p), {"square_avg", "previous_direction"}),
])
def test_hypergradient_variants_keep_at_most_one_buffer_more_than_their_base(factory, buffers):
    model, inputs, targets = make_regression_problem()
    opt = factory(model.parameters())
    for _ in range(2):
        opt.zero_grad()
        regression_loss(model, inputs, targets).backward()
        opt.step()
    for state in opt.state.values():
        assert {key for key, value in state.items() if isinstance(value, torch.Tensor)} == buffers
