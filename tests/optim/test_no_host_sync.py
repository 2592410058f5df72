"""No host sync in step(): α and the hypergradient stay device tensors, so the step traces whole.

A ``meta`` tensor has no data: reading one on the host raises. A step that runs on meta params
therefore reads nothing back; on CUDA the same code waits for the device nowhere.
"""

from __future__ import annotations

import copy

import pytest
import torch

from gradretention.optim import available_optimizers, create_optimizer, optimizer_info
from gradretention.optim.controllers.hypergradient import hypergradient_terms

ADAPTIVE = [name for name in available_optimizers() if optimizer_info(name)["family"] in ("hypergradient", "variance")]


def params(device: str = "cpu", dtype: torch.dtype = torch.float64) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator, dtype=dtype).to(device))
            for shape in ((5, 3), (3,))]


def set_grads(tensors: list[torch.Tensor], seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for tensor in tensors:
        tensor.grad = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype).to(tensor.device)


@pytest.mark.parametrize("name", ADAPTIVE)
def test_a_step_on_meta_params_reads_nothing_back_and_telemetry_reads_when_asked(name):
    tensors = params("meta")
    opt = create_optimizer(name, tensors)
    for _ in range(3):  # step 2 is the first with a hypergradient, step 3 the first with an lr-optimizer state
        for tensor in tensors:
            tensor.grad = torch.ones_like(tensor)
        opt.step()
    lr = opt.param_groups[0]["lr"]
    assert isinstance(lr, torch.Tensor) and lr.device.type == "meta" and lr.dtype == torch.float64
    with pytest.raises((RuntimeError, NotImplementedError)):
        opt.telemetry()  # the host read happens here, on request


@pytest.mark.parametrize("name", ADAPTIVE)
def test_dynamo_finds_no_graph_break_in_a_step_after_the_first(name):
    tensors = params()
    opt = create_optimizer(name, tensors)
    set_grads(tensors, 0)
    opt.step()
    set_grads(tensors, 1)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(opt.step)()
    assert explanation.graph_break_count == 0, [reason.reason for reason in explanation.break_reasons]
    assert explanation.graph_count == 1


def compiled_and_eager(name: str, backend: str, steps: int = 6) -> tuple[list, list, torch.optim.Optimizer, torch.optim.Optimizer]:
    eager_params = params()
    compiled_params = copy.deepcopy(eager_params)
    eager, compiled = create_optimizer(name, eager_params), create_optimizer(name, compiled_params)
    torch._dynamo.reset()
    step = torch.compile(compiled.step, backend=backend)
    for seed in range(steps):
        set_grads(eager_params, seed)
        set_grads(compiled_params, seed)
        eager.step()
        step()
    return eager_params, compiled_params, eager, compiled


@pytest.mark.parametrize("name", ADAPTIVE)
def test_compiled_step_equals_the_eager_step(name):
    # aot_eager traces and functionalises the step as Inductor would, without its C++ build.
    eager_params, compiled_params, eager, compiled = compiled_and_eager(name, "aot_eager")
    for a, b in zip(eager_params, compiled_params):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)  # eager may take a fused kernel: rounding only
    assert float(compiled.param_groups[0]["lr"]) == pytest.approx(float(eager.param_groups[0]["lr"]), rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adam_hd", "sgd_var"])
def test_inductor_compiled_step_equals_the_eager_step(name):
    eager_params, compiled_params, eager, compiled = compiled_and_eager(name, "inductor", steps=4)
    for a, b in zip(eager_params, compiled_params):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert float(compiled.param_groups[0]["lr"]) == pytest.approx(float(eager.param_groups[0]["lr"]), rel=1e-12)


def test_the_hypergradient_of_a_group_spanning_devices_reduces_on_its_first_device():
    # Two real devices are not available in the tests; meta stands in for the first one, and the
    # CPU terms cross to it (a CPU → meta copy is allowed, the reverse would read data).
    g, d = torch.ones(3), torch.full((3,), 2.0)
    h, scale = hypergradient_terms([(g.to("meta"), d.to("meta")), (g, d)], normalise=True)
    assert h.device.type == "meta" and scale.device.type == "meta"
    h_cpu, scale_cpu = hypergradient_terms([(g, d), (g, d)], normalise=True)
    assert float(h_cpu) == 12.0 and float(scale_cpu) == pytest.approx(12.0)
