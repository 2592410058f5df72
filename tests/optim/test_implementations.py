"""One generic test: every implementation of every registry name equals its reference loop, in
every dtype the name claims (its registry ``capabilities``), like torch's ``OptimizerInfo`` tests.

Implementations: the default path (``fused=None``: fused kernels where eligible), ``fused=True``
where the name claims a fused path, ``compiled=True`` where it claims compiled kernels (float32
and float64). The reference is ``fused=False`` for ours and ``foreach=False`` (torch's
per-tensor loop) for the torch baselines. Each runs 12 steps on the shared regression problem
with weight decay, one param skipping one step.
"""

from __future__ import annotations

import pytest
import torch

from gradretention.optim import available_optimizers, create_optimizer, optimizer_info
from gradretention.optim.kernels import DTYPES as COMPILED_DTYPES
from gradretention.optim.kernels import EXACT_DTYPES
from tests.optim.conftest import make_regression_problem, regression_loss

TOLERANCES = {torch.float64: (1e-12, 1e-14, 1e-10), torch.float32: (1e-5, 1e-6, 1e-4),
              torch.bfloat16: (2e-2, 1e-2, 2e-2), torch.float16: (5e-3, 1e-3, 5e-3)}
"""(rtol, atol, lr rel) per dtype: float64 carries the exactness, the others their rounding."""


def implementations(name: str) -> list[tuple[str, dict, torch.dtype]]:
    """(label, options, dtype) for every implementation ``name`` claims, in every dtype it claims."""
    info = optimizer_info(name)
    capabilities = info["capabilities"]
    cases = []
    for dtype in capabilities.dtypes:
        cases.append(("default", {}, dtype))
        if capabilities.fused and dtype in EXACT_DTYPES:  # the claim is for float32/float64 (see Capabilities)
            cases.append(("fused", {"fused": True}, dtype))
        if capabilities.compiled and dtype in COMPILED_DTYPES:
            cases.append(("compiled", {"compiled": True}, dtype))
    return cases


CASES = [(name, *case) for name in available_optimizers() for case in implementations(name)]


def reference_options(name: str) -> dict:
    return {"foreach": False} if optimizer_info(name)["family"] == "baseline" else {"fused": False}


def trajectory(name: str, options: dict, dtype: torch.dtype, steps: int = 12, skip_at: int = 5):
    """Params and lrs after ``steps`` steps of ``name`` with ``options`` in ``dtype``."""
    model, inputs, targets = make_regression_problem(torch.float64)
    model, inputs, targets = model.to(dtype), inputs.to(dtype), targets.to(dtype)
    info = optimizer_info(name)
    settings = {"weight_decay": 0.01} if "weight_decay" in info["defaults"] else {}
    optimizer = create_optimizer(name, model.parameters(), **settings, **options)
    lrs = []
    for step in range(steps):
        optimizer.zero_grad()
        loss = regression_loss(model, inputs, targets)
        loss.backward()
        if step == skip_at:
            model[2].bias.grad = None  # a param without a gradient for one step
        optimizer.step(loss=loss) if info["capabilities"].needs_loss else optimizer.step()
        lrs.append(float(optimizer.param_groups[0]["lr"]))
    return [p.detach().clone() for p in model.parameters()], lrs


@pytest.mark.xdist_group("compiled")
@pytest.mark.parametrize(("name", "label", "options", "dtype"), CASES,
                         ids=[f"{n}-{label}-{str(d).removeprefix('torch.')}" for n, label, _, d in CASES])
def test_every_implementation_equals_the_reference_loop(name, label, options, dtype):
    rtol, atol, lr_rel = TOLERANCES[dtype]
    params, lrs = trajectory(name, options, dtype)
    reference_params, reference_lrs = trajectory(name, reference_options(name), dtype)
    for a, b in zip(params, reference_params):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
    assert lrs == pytest.approx(reference_lrs, rel=lr_rel, abs=1e-12)


@pytest.mark.parametrize("name", available_optimizers())
def test_complex_params_step_with_the_right_maths_or_are_refused_as_claimed(name):
    # A complex param and its real view must take the same steps (|g|², Re⟨g, d⟩), or be refused.
    generator = torch.Generator().manual_seed(0)
    value = torch.randn(4, dtype=torch.complex128, generator=generator)
    grads = [torch.randn(4, dtype=torch.complex128, generator=generator) for _ in range(3)]
    complex_param = torch.nn.Parameter(value.clone())
    if not optimizer_info(name)["capabilities"].complex:
        with pytest.raises(ValueError, match="complex"):
            create_optimizer(name, [complex_param])
        return
    real_param = torch.nn.Parameter(torch.view_as_real(value.clone()))
    for param, as_real in ((complex_param, False), (real_param, True)):
        optimizer = create_optimizer(name, [param])
        for grad in grads:
            param.grad = torch.view_as_real(grad.clone()) if as_real else grad.clone()
            optimizer.step()
    torch.testing.assert_close(torch.view_as_real(complex_param.detach()), real_param.detach(), rtol=1e-12, atol=1e-14)


def test_capabilities_are_what_the_optimizers_do():
    # The claims the generic tests do not exercise directly: α on the device, the loss read.
    for name in available_optimizers():
        capabilities = optimizer_info(name)["capabilities"]
        param = torch.nn.Parameter(torch.ones(2))
        optimizer = create_optimizer(name, [param])
        param.grad = torch.ones(2)
        optimizer.step(loss=1.0) if capabilities.needs_loss else optimizer.step()
        assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor) == capabilities.device_lr, name
        assert ("loss" in __import__("inspect").signature(optimizer.step).parameters) >= capabilities.needs_loss


def test_the_step_dispatches_on_the_rules_hooks_not_on_its_name():
    # An Adam rule under another name takes the same fused path (and a rule that declares no fused
    # path the reference loop): the composed step never compares rule names.
    from gradretention.optim import ComposedOptimizer
    from gradretention.optim.rules.adam import AdamRule

    class RenamedAdam(AdamRule):
        name = "renamed"

    class ReferenceOnlyAdam(AdamRule):
        name = "adam"
        fused = False

    runs = []
    for rule in (AdamRule(), RenamedAdam(), ReferenceOnlyAdam()):
        model, inputs, targets = make_regression_problem(torch.float32)
        optimizer = ComposedOptimizer(model.parameters(), rule=rule, controller="hypergradient", lr=1e-3,
                                      hypergrad_lr=1e-4)
        for _ in range(5):
            optimizer.zero_grad()
            regression_loss(model, inputs, targets).backward()
            optimizer.step()
        runs.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))  # same hooks, same bits
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], runs[2]))  # the reference loop rounds otherwise
    for a, b in zip(runs[0], runs[2]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
