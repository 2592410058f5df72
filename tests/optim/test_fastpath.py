"""The fused fast path equals the readable reference loop.

Tolerance: float32 parameters, rtol 1e-5 / atol 1e-6 after 20 steps (the fused kernels
round in a different order); float64 to 1e-12. The lr trajectory is compared too.
"""

from __future__ import annotations

import copy

import pytest
import torch

from gradretention.optim import ComposedOptimizer, available_optimizers, create_optimizer, optimizer_info
from gradretention.optim import kernels
from tests.optim.conftest import regression_loss

# The composed names whose rule has a fused path (the registry's capabilities, not name prefixes).
FAST_NAMES = [n for n in available_optimizers() if optimizer_info(n)["capabilities"].fused
              and optimizer_info(n)["family"] in ("hypergradient", "variance")]
SETTINGS = [
    {},
    {"weight_decay": 0.05},
    {"multiplicative": True},
    {"lr_bounds": (0.0, 0.02)},
]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks smaller than the test's weight matrix, so the reduction crosses chunk borders."""
    monkeypatch.setattr(kernels, "CHUNK", 1 << 15)


def make_problem(dtype: torch.dtype):
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(64, 300, generator=generator, dtype=dtype)
    targets = torch.randn(64, 3, generator=generator, dtype=dtype)
    torch.manual_seed(1)
    # 300 x 300 = 90 000 weights > CHUNK (see small_chunks): the reduction crosses chunk borders.
    model = torch.nn.Sequential(torch.nn.Linear(300, 300), torch.nn.Tanh(), torch.nn.Linear(300, 3)).to(dtype)
    assert model[0].weight.numel() > kernels.CHUNK
    return model, inputs, targets


def run(name: str, fused: bool, settings: dict, dtype: torch.dtype, steps: int = 20):
    model, inputs, targets = make_problem(dtype)
    hd_settings = {k: v for k, v in settings.items() if k in optimizer_info(name)["defaults"]}  # what it has
    opt = create_optimizer(name, model.parameters(), fused=fused, **hd_settings)
    lrs = []
    for step in range(steps):
        opt.zero_grad()
        regression_loss(model, inputs, targets).backward()
        if step == 5:
            model[2].bias.grad = None  # a param skipped for one step
        opt.step()
        lrs.append(float(opt.param_groups[0]["lr"]))  # α is a device scalar: read its value now
    return [p.detach().clone() for p in model.parameters()], lrs


@pytest.mark.parametrize("settings", SETTINGS, ids=["plain", "weight-decay", "hdm", "bounds"])
@pytest.mark.parametrize("name", FAST_NAMES)
def test_fast_path_equals_reference_in_float32(name, settings):
    fast_params, fast_lrs = run(name, True, settings, torch.float32)
    ref_params, ref_lrs = run(name, False, settings, torch.float32)
    for fast, ref in zip(fast_params, ref_params):
        torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)
    assert fast_lrs == pytest.approx(ref_lrs, rel=1e-4, abs=1e-9)


@pytest.mark.parametrize("name", FAST_NAMES)
def test_fast_path_equals_reference_in_float64_across_chunk_borders(name):
    fast_params, fast_lrs = run(name, True, {"weight_decay": 0.01}, torch.float64)
    ref_params, ref_lrs = run(name, False, {"weight_decay": 0.01}, torch.float64)
    for fast, ref in zip(fast_params, ref_params):
        torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-14)
    assert fast_lrs == pytest.approx(ref_lrs, rel=1e-10)


def test_fused_true_refuses_an_ineligible_group():
    weight = torch.nn.Parameter(torch.randn(4, 4).t())  # not contiguous
    opt = ComposedOptimizer([weight], rule="adam", fused=True)
    weight.grad = torch.ones(4, 4)
    with pytest.raises(RuntimeError, match="fused=True needs dense contiguous"):
        opt.step()


def test_non_contiguous_params_take_the_reference_loop():
    weight = torch.nn.Parameter(torch.randn(4, 4).t())
    weight.grad = torch.ones(4, 4)
    assert not (kernels.uniform_dense([weight]) and kernels.kernels_exact(weight))
    twin = copy.deepcopy(weight)
    twin.grad = torch.ones(4, 4)
    auto = ComposedOptimizer([weight], rule="adam", lr=0.1)
    reference = ComposedOptimizer([twin], rule="adam", lr=0.1, fused=False)
    auto.step()
    reference.step()
    assert torch.equal(weight, twin)


def test_fast_and_reference_state_dicts_are_interchangeable():
    model, inputs, targets = make_problem(torch.float64)
    twin = copy.deepcopy(model)
    fast = create_optimizer("adam_hd", model.parameters(), fused=True)
    for _ in range(3):
        fast.zero_grad()
        regression_loss(model, inputs, targets).backward()
        fast.step()
    reference = create_optimizer("adam_hd", twin.parameters(), fused=False)
    twin.load_state_dict(model.state_dict())
    state = copy.deepcopy(fast.state_dict())
    state["param_groups"][0]["fused"] = False
    reference.load_state_dict(state)
    for net, opt in ((model, fast), (twin, reference)):
        opt.zero_grad()
        regression_loss(net, inputs, targets).backward()
        opt.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_a_grad_of_another_dtype_takes_the_reference_loop():
    weight = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    weight.grad_dtype = None  # torch refuses a grad of another dtype unless told to allow it
    weight.grad = torch.ones(4, dtype=torch.float32)
    assert not (kernels.uniform_dense([weight]) and kernels.kernels_exact(weight))


def test_effective_gradients_are_formed_on_first_read_and_once():
    from gradretention.optim.base import EffectiveGrads  # noqa: PLC0415
    from gradretention.optim.composed import effective_grad  # noqa: PLC0415

    params = [torch.nn.Parameter(torch.tensor([1.0, 2.0])), torch.nn.Parameter(torch.tensor([3.0]))]
    for param in params:
        param.grad = torch.ones_like(param)
    formed = []

    def make(param):
        formed.append(param)
        return effective_grad(param, 0.5)

    grads = EffectiveGrads(params, make)
    assert len(grads) == 2 and formed == []  # the fused paths never read them: no pass over memory
    assert torch.equal(grads[0], torch.tensor([1.5, 2.0])) and torch.equal(list(grads)[1], torch.tensor([2.5]))
    assert len(formed) == 2
