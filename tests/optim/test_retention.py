"""RescaledSGD against hand computations, its rate bounds, edge tensors and its errors."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from gradretention.optim import RescaledSGD, create_optimizer
from gradretention.optim import kernels


def reference_trajectory(theta: list[float], grads: list[list[float]], lr: float, base_lr: float, decay: float,
                         retain_min: bool, update: str) -> list[float]:
    """specs/algorithms.md §3 in plain Python floats, one tensor."""
    retained = [0.0] * len(theta)
    for grad in grads:
        retained = [decay * m + g for m, g in zip(retained, grad)]
        magnitudes = [abs(m) for m in retained]
        low, high = min(magnitudes), max(magnitudes)
        if high - low > 1e-12 * high:
            shares = [(a - low) / (high - low) for a in magnitudes]
        else:
            shares = [0.0] * len(theta)
        rates = [base_lr + (lr - base_lr) * s for s in shares] if retain_min else [lr] * len(theta)
        directions = [math.copysign(1.0, m) if m != 0 else 0.0 for m in retained] if update == "sign" else retained
        theta = [t - rate * d for t, rate, d in zip(theta, rates, directions)]
    return theta


def run(theta: list[float], grads: list[list[float]], **kwargs) -> tuple[torch.Tensor, RescaledSGD]:
    param = torch.nn.Parameter(torch.tensor(theta, dtype=torch.float64))
    opt = RescaledSGD([param], **kwargs)
    for grad in grads:
        param.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
    return param.detach(), opt


GRADS = [[1.0, -3.0, 0.0, 2.0], [0.5, 1.0, -0.25, -4.0], [-2.0, 0.1, 0.3, 1.0]]
THETA = [1.0, -2.0, 0.5, 3.0]


def test_one_step_by_hand_sign_update_with_retain_min():
    # m = g = [1, -3, 0, 2]; |m| spans [0, 3], so s = [1/3, 1, 0, 2/3]; η = 0.01 + 0.09·s.
    theta, _ = run(THETA, GRADS[:1], lr=0.1, base_lr=0.01, decay=0.9)
    expected = [1.0 - 0.04, -2.0 + 0.1, 0.5 - 0.0, 3.0 - 0.07]
    assert theta.tolist() == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("update", ["sign", "magnitude"])
@pytest.mark.parametrize("retain_min", [True, False])
def test_three_steps_match_the_hand_computation(update, retain_min):
    kwargs = {"lr": 0.1, "base_lr": 0.01, "decay": 0.9, "retain_min": retain_min, "update": update}
    theta, _ = run(THETA, GRADS, **kwargs)
    assert theta.tolist() == pytest.approx(reference_trajectory(THETA, GRADS, **kwargs), abs=1e-14)


def test_retained_gradient_decays_and_is_never_reset():
    _, opt = run(THETA, GRADS, lr=0.1, base_lr=0.01, decay=0.5)
    expected = [0.25 * a + 0.5 * b + c for a, b, c in zip(*GRADS)]
    retained = next(iter(opt.state.values()))["retained_grad"]
    assert retained.tolist() == pytest.approx(expected, abs=1e-15)


def test_rates_stay_between_base_lr_and_the_peak():
    generator = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in [(5, 3), (7,), (1,)]]
    opt = RescaledSGD(params, lr=0.05, base_lr=0.002, decay=0.8)
    for _ in range(30):
        for param in params:
            param.grad = torch.randn(param.shape, generator=generator) * 10
        opt.step()
        for param in params:
            rates = opt.effective_lr(param)
            assert rates.min() >= 0.002 and rates.max() <= 0.05
    telemetry = opt.telemetry()
    assert telemetry["lr_min/g0"] == pytest.approx(0.002)  # the smallest |m| of a tensor gets base_lr
    assert telemetry["lr_max/g0"] == pytest.approx(0.05)
    assert 0.002 < telemetry["lr_mean/g0"] < 0.05
    assert telemetry["lr/g0"] == 0.05


@pytest.mark.parametrize("update", ["sign", "magnitude"])
def test_constant_tensor_moves_at_base_lr(update):
    theta, opt = run([1.0, 1.0, 1.0], [[2.0, 2.0, 2.0]], lr=0.1, base_lr=0.01, update=update)
    step = 0.01 * (1.0 if update == "sign" else 2.0)
    assert theta.tolist() == pytest.approx([1.0 - step] * 3, abs=1e-15)
    assert opt.telemetry()["lr_max/g0"] == pytest.approx(0.01)


def test_all_zero_gradient_gives_a_finite_zero_step():
    theta, opt = run([1.0, -1.0], [[0.0, 0.0], [0.0, 0.0]], lr=0.1, base_lr=0.01)
    assert theta.tolist() == [1.0, -1.0]
    assert torch.isfinite(opt.effective_lr(opt.param_groups[0]["params"][0])).all()


def test_single_element_tensor_moves_at_base_lr():
    theta, _ = run([0.5], [[-3.0]], lr=0.1, base_lr=0.01)
    assert theta.tolist() == pytest.approx([0.51], abs=1e-15)


def test_a_single_exact_zero_does_not_change_the_rule_for_the_rest():
    # The reference switched the whole tensor to another rule when one entry of m was 0.
    with_zero, _ = run([0.0, 0.0, 0.0], [[0.0, 1.0, 2.0]], lr=0.1, base_lr=0.01)
    assert with_zero.tolist() == pytest.approx([0.0, -0.055, -0.1], abs=1e-15)


def test_retain_min_off_uses_the_peak_everywhere():
    theta, opt = run([0.0, 0.0], [[0.001, -5.0]], lr=0.1, base_lr=0.01, retain_min=False)
    assert theta.tolist() == pytest.approx([-0.1, 0.1], abs=1e-15)
    assert opt.telemetry()["lr_min/g0"] == pytest.approx(0.1)


def test_effective_lr_before_any_step_is_the_floor():
    param = torch.nn.Parameter(torch.zeros(3))
    opt = RescaledSGD([param], lr=0.1, base_lr=0.01)
    assert opt.effective_lr(param).tolist() == pytest.approx([0.01] * 3)
    assert param not in opt.state


def test_scheduler_scales_the_peak_rate():
    param = torch.nn.Parameter(torch.zeros(3))
    opt = RescaledSGD([param], lr=0.1, base_lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    param.grad = torch.tensor([1.0, 2.0, 3.0])
    opt.step()
    scheduler.step()
    assert opt.effective_lr(param).max().item() == pytest.approx(0.05)


def test_weight_decay_is_coupled_and_never_written_into_grad():
    param = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    opt = RescaledSGD([param], lr=0.1, base_lr=0.01, weight_decay=0.5, update="magnitude")
    param.grad = torch.tensor([0.0, 1.0], dtype=torch.float64)
    opt.step()
    # g = [0.5, 2.0]: s = [0, 1], η = [0.01, 0.1]
    assert param.detach().tolist() == pytest.approx([1.0 - 0.005, 2.0 - 0.2], abs=1e-15)
    assert param.grad.tolist() == [0.0, 1.0]


def test_step_returns_the_given_loss():
    param = torch.nn.Parameter(torch.zeros(2))
    param.grad = torch.ones(2)
    assert RescaledSGD([param]).step(loss=1.5) == 1.5


ERRORS = [
    ({"lr": 1e-3, "base_lr": 1e-2}, r"Invalid base_lr value: 0.01 \(valid: <= lr = 0.001"),
    ({"update": "signum"}, r"Invalid update value: 'signum' \(valid: 'sign' or 'magnitude'\)"),
    ({"decay": 1.5}, r"Invalid decay value: 1.5 \(valid: in \[0, 1\]\)"),
    ({"retain_min": 1}, r"Invalid retain_min value: 1"),
]


@pytest.mark.parametrize("kwargs,message", ERRORS, ids=[m.split(" value")[0] for _, m in ERRORS])
def test_bad_hyperparameters_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RescaledSGD([torch.nn.Parameter(torch.zeros(2))], **kwargs)


def test_param_group_with_base_lr_above_its_lr_is_rejected():
    opt = RescaledSGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, base_lr=0.01)
    with pytest.raises(ValueError, match=r"Invalid base_lr value: 0.01 \(valid: <= lr = 0.001"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.001})


def test_effective_lr_of_a_foreign_param_is_an_error():
    opt = RescaledSGD([torch.nn.Parameter(torch.zeros(2))])
    with pytest.raises(ValueError, match="not managed by this RescaledSGD"):
        opt.effective_lr(torch.zeros(4))


def test_registry_spec_builds_the_configured_optimizer():
    opt = create_optimizer("rescaled_sgd[update=magnitude,retain_min=false]", [torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, RescaledSGD)
    assert opt.param_groups[0]["update"] == "magnitude" and opt.param_groups[0]["retain_min"] is False
    assert opt.param_groups[0]["lr"] == 1e-2


# --- The fast path (in place, block by block, one host sync per group) equals the reference loop. ---
# Tolerance: float32 params rtol 1e-5 / atol 1e-6 after 12 steps (η·sign m is formed as two
# terms instead of one product); float64 rtol 1e-12 / atol 1e-14. The retained gradient m
# takes the reference's roundings, so without weight decay (no feedback from θ) it is equal
# bit for bit.

FAST_SETTINGS = [
    {},
    {"update": "magnitude"},
    {"retain_min": False},
    {"retain_min": False, "update": "magnitude"},
    {"weight_decay": 0.1, "decay": 0.5},
    {"weight_decay": 0.1, "update": "magnitude"},
]


def fast_problem(dtype: torch.dtype) -> tuple[list[torch.nn.Parameter], list[list[torch.Tensor]]]:
    """Params of assorted shapes and 12 steps of gradients, including the rate rule's edge cases."""
    generator = torch.Generator().manual_seed(3)
    shapes = [(40, 30), (257,), (1,), (6,), (5, 4), (3,)]
    params = [torch.nn.Parameter(torch.randn(shape, generator=generator, dtype=dtype)) for shape in shapes]
    steps = []
    for _ in range(12):
        grads = [torch.randn(shape, generator=generator, dtype=dtype) for shape in shapes]
        grads[0][:, :3] = 0.0  # dead units: m stays exactly 0 there (sign 0, no move)
        grads[3] = 2.0 + 1e-3 * grads[3]  # all |m| within a factor 2: the narrow-range form
        grads[4] = torch.full((5, 4), -0.5, dtype=dtype)  # equal magnitudes: η = base_lr
        grads[5] = torch.zeros(3, dtype=dtype)
        steps.append(grads)
    return params, steps


def run_rescaled(fused: bool, settings: dict, dtype: torch.dtype, block: int | None = None,
                 monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[list[torch.Tensor], RescaledSGD]:
    if block is not None:
        monkeypatch.setattr(kernels, "BLOCK", block)
    params, steps = fast_problem(dtype)
    opt = RescaledSGD([{"params": params[:4]}, {"params": params[4:], "lr": 0.02}], lr=0.1, base_lr=0.005,
                      fused=fused, **settings)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.1)  # takes lr below base_lr
    for index, grads in enumerate(steps):
        for param, grad in zip(params, grads):
            param.grad = None if index == 5 and param is params[2] else grad  # one skipped step
        opt.step()
        scheduler.step()
    return [p.detach().clone() for p in params], opt


@pytest.mark.parametrize("block", [None, 64], ids=["one-block", "many-blocks"])
@pytest.mark.parametrize("settings", FAST_SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "default")
def test_fast_path_equals_reference_in_float32(settings, block, monkeypatch):
    fast, fast_opt = run_rescaled(None, settings, torch.float32, block, monkeypatch)
    reference, reference_opt = run_rescaled(False, settings, torch.float32)
    for a, b in zip(fast, reference):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    if "weight_decay" not in settings:
        for param_fast, param_ref in zip(fast_opt.state, reference_opt.state):
            assert torch.equal(fast_opt.state[param_fast]["retained_grad"],
                               reference_opt.state[param_ref]["retained_grad"])


@pytest.mark.parametrize("settings", FAST_SETTINGS[:2] + FAST_SETTINGS[4:5])
def test_fast_path_equals_reference_in_float64(settings, monkeypatch):
    fast, fast_opt = run_rescaled(True, settings, torch.float64, 100, monkeypatch)
    reference, reference_opt = run_rescaled(False, settings, torch.float64)
    for a, b in zip(fast, reference):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for param_fast, param_ref in zip(fast_opt.state, reference_opt.state):
        torch.testing.assert_close(fast_opt.state[param_fast]["retained_grad"],
                                   reference_opt.state[param_ref]["retained_grad"], rtol=1e-12, atol=1e-14)


def test_fast_and_reference_state_dicts_are_interchangeable():
    params, steps = fast_problem(torch.float64)
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    fast = RescaledSGD(params, lr=0.1, base_lr=0.005, fused=True)
    for grads in steps[:3]:
        for param, grad in zip(params, grads):
            param.grad = grad
        fast.step()
    reference = RescaledSGD(twins, lr=0.1, base_lr=0.005, fused=False)
    state = copy.deepcopy(fast.state_dict())  # load_state_dict would share the tensors
    assert set(state["state"][0]) == {"retained_grad"}
    state["param_groups"][0]["fused"] = False
    reference.load_state_dict(state)
    for twin, param in zip(twins, params):
        twin.data.copy_(param.detach())
    for opt, tensors in ((fast, params), (reference, twins)):
        for tensor, grad in zip(tensors, steps[3]):
            tensor.grad = grad
        opt.step()
    for a, b in zip(params, twins):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_non_contiguous_params_take_the_reference_loop_and_fused_true_refuses_them():
    weight = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64).t())
    weight.grad = torch.randn(3, 4, dtype=torch.float64)
    twin = torch.nn.Parameter(weight.detach().clone())  # contiguous copy
    twin.grad = weight.grad.clone()
    RescaledSGD([weight], lr=0.1, base_lr=0.01).step()
    RescaledSGD([twin], lr=0.1, base_lr=0.01, fused=False).step()
    assert torch.equal(weight, twin)
    with pytest.raises(RuntimeError, match="fused=True needs dense, contiguous"):
        RescaledSGD([weight], lr=0.1, base_lr=0.01, fused=True).step()
