"""The gradient-variance controller (specs/algorithms.md §2.2) by hand, in bounds, and as Adam at κ = 0."""

from __future__ import annotations

import copy

import pytest
import torch

from gradretention.optim import ComposedOptimizer, create_optimizer
from gradretention.optim.controllers.variance import gradient_variance, variance_law
from tests.optim.conftest import make_regression_problem, regression_loss


def sample_variance(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def reference_alphas(grads: list[list[float]], lr: float, rho: float = 0.9, kappa: float = 0.1,
                     low: float = 0.01, high: float = 10.0) -> list[float]:
    """α_t of §2.2 in plain Python for one param group holding one tensor."""
    alphas, smoothed, alpha = [], None, lr
    for grad in grads:
        variance = sample_variance(grad)
        if smoothed is None:
            smoothed, change = variance, 0.0
        else:
            previous, smoothed = smoothed, rho * smoothed + (1 - rho) * variance
            change = max(-1.0, min(1.0, (smoothed - previous) / (previous + 1e-12)))
        alpha = min(max(alpha * (1 - kappa * change), lr * low), lr * high)
        alphas.append(alpha)
    return alphas


def drive(grads: list[list[float]], lr: float = 0.1, **kwargs) -> tuple[list[float], torch.Tensor, ComposedOptimizer]:
    param = torch.nn.Parameter(torch.zeros(len(grads[0]), dtype=torch.float64))
    opt = ComposedOptimizer([param], rule="sgd", controller="variance", lr=lr, **kwargs)
    alphas = []
    for grad in grads:
        param.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
        alphas.append(float(opt.param_groups[0]["lr"]))  # α is a device scalar: read its value now
    return alphas, param.detach(), opt


CRAFTED = [[1.0, -1.0, 1.0, -1.0], [2.0, -2.0, 2.0, -2.0], [0.5, -0.5, 0.5, -0.5]]


def test_alpha_by_hand_for_a_crafted_gradient_sequence():
    # Var = 4/3, 16/3, 1/3. v_2 = 0.9·4/3 + 0.1·16/3 = 26/15, r_2 = 0.3, α_2 = 0.1·(1 − 0.03).
    # v_3 = 0.9·26/15 + 0.1/3 = 1.59333…, r_3 = (1.59333 − 1.73333)/1.73333 = −21/260, α_3 = α_2·(1 + 2.1/260).
    # (The ε = 1e-12 in r's denominator shifts α by ~1e-15, hence abs=1e-13.)
    alphas, theta, opt = drive(CRAFTED)
    assert alphas == pytest.approx([0.1, 0.097, 0.097 * (1 + 2.1 / 260)], abs=1e-13)
    # SGD moves with this step's α: θ_3 = −Σ α_t g_t
    expected = [-(alphas[0] * a + alphas[1] * b + alphas[2] * c) for a, b, c in zip(*CRAFTED)]
    assert theta.tolist() == pytest.approx(expected, abs=1e-15)
    telemetry = opt.telemetry()
    assert telemetry["grad_variance/g0"] == pytest.approx(0.9 * 26 / 15 + 0.1 / 3, abs=1e-14)
    assert telemetry["variance_change/g0"] == pytest.approx(-21 / 260, abs=1e-12)
    assert telemetry["lr/g0"] == alphas[-1]


def test_alpha_matches_the_plain_python_law_over_a_random_sequence():
    generator = torch.Generator().manual_seed(3)
    grads = [(torch.randn(6, generator=generator, dtype=torch.float64) * (1 + t % 4)).tolist() for t in range(40)]
    alphas, _, _ = drive(grads, lr=0.05)
    assert alphas == pytest.approx(reference_alphas(grads, 0.05), rel=1e-12)


def test_rising_variance_lowers_alpha_and_falling_variance_raises_it():
    rising = [[s, -s, s, -s] for s in (1.0, 1.5, 2.0, 3.0, 4.5, 7.0)]
    alphas, _, _ = drive(rising)
    assert all(b < a for a, b in zip(alphas, alphas[1:]))
    falling, _, _ = drive(rising[::-1])
    assert all(b > a for a, b in zip(falling, falling[1:]))


def test_relative_change_is_clamped_to_one():
    # Var jumps ×10⁴: (v_2 − v_1)/v_1 ≫ 1, so r_2 = 1 and α_2 = α_1(1 − κ).
    alphas, _, opt = drive([[0.01, -0.01], [1.0, -1.0]], lr=0.1)
    assert opt.telemetry()["variance_change/g0"] == 1.0
    assert alphas[1] == pytest.approx(0.09, abs=1e-15)


def test_alpha_stays_within_its_bounds_relative_to_alpha0():
    generator = torch.Generator().manual_seed(0)
    # Random scales over 4 decades, then a sustained rise (r → 1) and a sustained fall (r ≈ −(1−ρ)).
    scales = [10 ** (4 * torch.rand(1, generator=generator).item() - 2) for _ in range(200)]
    scales += [2.0**k for k in range(40)] + [2.0 ** (40 - k) for k in range(80)]
    grads = [(torch.randn(5, generator=generator, dtype=torch.float64) * scale).tolist() for scale in scales]
    alphas, _, opt = drive(grads, lr=0.1, lr_scaling=1.0, min_factor=0.1, max_factor=2.0)
    assert all(0.1 * 0.1 - 1e-15 <= a <= 0.1 * 2.0 + 1e-15 for a in alphas)
    assert min(alphas) == pytest.approx(0.01) and max(alphas) == pytest.approx(0.2)  # both bounds are reached
    assert opt.param_groups[0]["lr0"] == 0.1


def test_adam_var_with_zero_lr_scaling_equals_torch_adam():
    model, inputs, targets = make_regression_problem()
    twin = copy.deepcopy(model)
    ours = create_optimizer("adam_var", model.parameters(), lr=1e-3, lr_scaling=0.0, weight_decay=0.01)
    theirs = torch.optim.Adam(twin.parameters(), lr=1e-3, weight_decay=0.01)
    for _ in range(25):
        for net, opt in ((model, ours), (twin, theirs)):
            opt.zero_grad()
            regression_loss(net, inputs, targets).backward()
            opt.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        assert (a - b).abs().max().item() < 1e-12
    assert ours.param_groups[0]["lr"] == 1e-3


def test_two_groups_keep_their_own_variance():
    first = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    second = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = ComposedOptimizer([{"params": [first]}, {"params": [second], "lr": 0.2}], rule="sgd",
                            controller="variance", lr=0.1)
    first.grad = torch.tensor([1.0, -1.0], dtype=torch.float64)
    second.grad = torch.tensor([3.0, 0.0], dtype=torch.float64)
    opt.step()
    telemetry = opt.telemetry()
    assert telemetry["grad_variance/g0"] == pytest.approx(2.0) and telemetry["grad_variance/g1"] == pytest.approx(4.5)
    assert (opt.param_groups[0]["lr0"], opt.param_groups[1]["lr0"]) == (0.1, 0.2)


def test_variance_spans_all_tensors_of_the_group_exactly():
    generator = torch.Generator().manual_seed(1)
    grads = [torch.randn(4, 3, generator=generator, dtype=torch.float64) + 50,
             torch.randn(7, generator=generator, dtype=torch.float64) * 3, torch.tensor([2.0], dtype=torch.float64)]
    flat = torch.cat([g.flatten() for g in grads]).tolist()
    assert gradient_variance(grads).item() == pytest.approx(sample_variance(flat), rel=1e-13)


def test_variance_of_fewer_than_two_entries_is_zero_and_bfloat16_reduces_in_float32():
    assert gradient_variance([torch.tensor([3.0])]).item() == 0.0
    result = gradient_variance([torch.tensor([1.0, 2.0, 4.0], dtype=torch.bfloat16)])
    assert result.dtype == torch.float32 and result.item() == pytest.approx(sample_variance([1.0, 2.0, 4.0]))


def test_law_starts_from_the_first_variance_with_zero_change():
    step = variance_law(5.0, None, lr=0.3, lr0=0.3, smoothing=0.9, scaling=0.1, min_factor=0.01, max_factor=10.0)
    assert (step.variance, step.change, step.lr) == (5.0, 0.0, 0.3)


ERRORS = [
    ({"lr_scaling": 2.0}, r"Invalid lr_scaling value: 2.0 \(valid: in \[0, 1\]\)"),
    ({"min_factor": 1.5}, r"Invalid min_factor value: 1.5 \(valid: in \[0, 1\]\)"),
    ({"max_factor": 0.5}, r"Invalid max_factor value: 0.5 \(valid: >= 1\)"),
    ({"variance_smoothing": 1.0}, r"Invalid variance_smoothing value: 1.0 \(valid: in \[0, 1\)\)"),
    ({"hypergrad_lr": 1e-3}, r"Unknown hyperparameter\(s\) hypergrad_lr for optimizer 'sgd_var'"),
]


@pytest.mark.parametrize("kwargs,message", ERRORS, ids=[next(iter(k)) for k, _ in ERRORS])
def test_bad_hyperparameters_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_optimizer("sgd_var", [torch.nn.Parameter(torch.zeros(2))], **kwargs)


def test_a_scheduler_composes_down_to_the_floor_anchored_at_alpha0():
    param = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = ComposedOptimizer([param], rule="sgd", controller="variance", lr=0.1, lr_scaling=0.0)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    used = []
    for _ in range(4):
        param.grad = torch.tensor([1.0, -1.0], dtype=torch.float64)
        opt.step()
        used.append(float(opt.param_groups[0]["lr"]))  # α is a device scalar: read its value now
        scheduler.step()
    # The scheduler's 1e-4 at step 4 is lifted to α_0·min_factor = 1e-3 (documented in the class note).
    assert used == pytest.approx([0.1, 0.01, 0.001, 0.001])
