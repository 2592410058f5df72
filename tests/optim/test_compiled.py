"""The Inductor-compiled kernels equal the reference loops, and run exactly when the policy says.

Tolerance: float32, rtol 1e-5 / atol 1e-6 on the parameters after 12 steps and rel 1e-4
on the lr trajectory (the kernels round without fused multiply-adds and reduce in another
order); float64, rtol 1e-12. All tests share one xdist worker, so each graph compiles once.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from gradretention.optim import create_optimizer
from gradretention.optim import kernels as compiled
from tests.optim.conftest import make_regression_problem, regression_loss

pytestmark = pytest.mark.xdist_group("compiled")

# Every name claiming compiled kernels equals its reference in tests/optim/test_implementations.py;
# here: option variants, the state the kernels write, the switch step, compiler failures.
VARIANTS = [
    ("sgd_hd", {"momentum": 0.9, "dampening": 0.1}),
    ("sgdn_hd", {"weight_decay": 0.05}),
    ("sgdn_hd", {"multiplicative": True, "weight_decay": 0.05}),  # Σ⟨e, d⟩, ‖e‖², ‖d‖² in one C++ pass
    ("rmsprop_hd", {"multiplicative": True}),
    ("adam_hd", {"multiplicative": True, "weight_decay": 0.05}),  # h, ‖g‖², ‖d‖² in one C++ pass
    ("adagrad_hd", {"lr_decay": 0.01, "initial_accumulator_value": 0.1}),
    ("rmsprop_hd", {"centered": True}),
    ("rmsprop_hd", {"centered": True, "momentum": 0.5, "weight_decay": 0.05}),
    ("rmsprop_var", {"momentum": 0.5}),
    ("rescaled_sgd", {"update": "magnitude", "weight_decay": 0.05}),
    ("rescaled_sgd", {"retain_min": False}),
    ("enhanced_sgd", {"noise_pool": 7, "weight_decay": 0.05}),
    ("enhanced_sgd", {"noise_scale": 0.0, "clip_factor": None, "centering": False}),
]


def trajectory(name: str, settings: dict, dtype: torch.dtype = torch.float32, steps: int = 12, skip_at: int = 5):
    """Params, lrs and the optimizer after ``steps`` steps of ``name`` on the shared regression problem."""
    model, inputs, targets = make_regression_problem(dtype)
    if name == "enhanced_sgd":
        settings = {"seed": 3, "lr": 0.05, **settings}  # some exploration, so the scales move
    optimizer = create_optimizer(name, model.parameters(), **settings)
    lrs = []
    for step in range(steps):
        optimizer.zero_grad()
        loss = regression_loss(model, inputs, targets)
        loss.backward()
        if step == skip_at:
            model[2].bias.grad = None  # a param without a gradient for one step
        optimizer.step(loss=loss) if name == "enhanced_sgd" else optimizer.step()
        lrs.append(float(optimizer.param_groups[0]["lr"]))  # α is a device scalar: read its value now
    return [p.detach().clone() for p in model.parameters()], lrs, optimizer


def assert_trajectories_close(first, second, rtol: float, atol: float, lr_rel: float) -> None:
    for a, b in zip(first[0], second[0]):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
    assert first[1] == pytest.approx(second[1], rel=lr_rel, abs=1e-12)


TOLERANCES = {torch.float32: (1e-4, 1e-5, 1e-3), torch.float64: (1e-12, 1e-14, 1e-10)}
"""(rtol, atol, lr rel) per dtype for the variants: centred RMSprop's √(v − c²) and a negative α
of SGD-HD amplify float32 rounding, so float32 is loose and float64 carries the exactness."""


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "settings"), VARIANTS, ids=[f"{n}-{'-'.join(s)}" for n, s in VARIANTS])
def test_compiled_variants_equal_reference(name, settings, dtype):
    rtol, atol, lr_rel = TOLERANCES[dtype]
    compiled_run = trajectory(name, {**settings, "compiled": True}, dtype)
    reference_run = trajectory(name, {**settings, "fused": False}, dtype)
    assert_trajectories_close(compiled_run, reference_run, rtol, atol, lr_rel)
    # The state the kernels wrote in place is the reference's state, key by key.
    compiled_state, reference_state = compiled_run[2].state_dict()["state"], reference_run[2].state_dict()["state"]
    for index, values in reference_state.items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                torch.testing.assert_close(compiled_state[index][key], value, rtol=rtol, atol=atol)
            else:
                assert compiled_state[index][key] == value


def test_kernels_ran_compiled():
    before = compiled.CALLS.copy()
    trajectory("adam_hd", {"compiled": True}, steps=3)
    trajectory("adagrad_hd", {"compiled": True}, steps=3)
    # Adam-HD: its reduction from step 2 (step 1 has no d_{t-1}); Adagrad: its update from step 2
    # (step 1 allocates the state eagerly) and the reduction of stored directions stays eager.
    assert compiled.CALLS["adam_direction_dots"] - before["adam_direction_dots"] == 2
    assert compiled.CALLS["adagrad_update"] - before["adagrad_update"] == 2
    # HDM needs ‖g‖‖d‖ too: h and both norms come from one pass (no d_{t-1} rebuilt as a tensor).
    trajectory("adam_hd", {"compiled": True, "multiplicative": True}, steps=3)
    assert compiled.CALLS["adam_direction_terms"] - before["adam_direction_terms"] == 2
    trajectory("sgdn_hd", {"compiled": True, "multiplicative": True}, steps=3)
    assert compiled.CALLS["stored_direction_terms"] - before["stored_direction_terms"] == 2


def test_auto_switches_after_the_set_step_and_only_for_large_groups(monkeypatch):
    monkeypatch.setattr(compiled, "COMPILE_AFTER_STEPS", 3)
    model, inputs, targets = make_regression_problem(torch.float32)
    count = sum(p.numel() for p in model.parameters())
    calls = []
    for threshold in (count, count + 1):
        monkeypatch.setattr(compiled, "COMPILE_MIN_NUMEL", threshold)
        model, inputs, targets = make_regression_problem(torch.float32)
        optimizer = create_optimizer("rmsprop_hd", model.parameters())  # compiled=None: auto
        seen = []
        for _ in range(5):
            start = compiled.CALLS["rmsprop_update"]
            optimizer.zero_grad()
            regression_loss(model, inputs, targets).backward()
            optimizer.step()
            seen.append(compiled.CALLS["rmsprop_update"] - start)
        calls.append(seen)
    assert calls == [[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]]


def test_auto_runs_are_bit_identical_to_each_other(monkeypatch):
    monkeypatch.setattr(compiled, "COMPILE_AFTER_STEPS", 4)
    monkeypatch.setattr(compiled, "COMPILE_MIN_NUMEL", 1)
    first, second = trajectory("adam_hd", {}), trajectory("adam_hd", {})
    for a, b in zip(first[0], second[0]):
        assert torch.equal(a, b)
    assert first[1] == second[1]


def test_compiled_state_dict_round_trip_continues_bit_for_bit():
    model, inputs, targets = make_regression_problem(torch.float32)
    optimizer = create_optimizer("rmsprop_hd", model.parameters(), compiled=True)

    def step(net, opt):
        opt.zero_grad()
        regression_loss(net, inputs, targets).backward()
        opt.step()

    for _ in range(3):
        step(model, optimizer)
    twin = copy.deepcopy(model)
    saved = copy.deepcopy(optimizer.state_dict())
    for _ in range(3):
        step(model, optimizer)
    restored = create_optimizer("rmsprop_hd", twin.parameters(), compiled=True)
    restored.load_state_dict(saved)
    for _ in range(3):
        step(twin, restored)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


def test_compiled_true_without_a_compiler_is_a_clear_error(monkeypatch):
    from torch._inductor import config  # noqa: PLC0415

    monkeypatch.setattr(compiled, "_AVAILABLE", {})
    with config.patch({"cpp.cxx": (None, "no-such-compiler-gradretention")}):
        model, inputs, targets = make_regression_problem(torch.float32)
        with pytest.raises(RuntimeError, match="compiled=True needs torch.compile on cpu: no C.. compiler"):
            create_optimizer("adam_hd", model.parameters(), compiled=True)  # refused at construction
        # "auto" quietly stays eager: the same numbers as compiled=False.
        monkeypatch.setattr(compiled, "COMPILE_MIN_NUMEL", 1)
        monkeypatch.setattr(compiled, "COMPILE_AFTER_STEPS", 0)
        auto, eager = trajectory("adam_hd", {}, steps=4), trajectory("adam_hd", {"compiled": False}, steps=4)
    for a, b in zip(auto[0], eager[0]):
        assert torch.equal(a, b)


def test_a_kernel_that_fails_to_compile_warns_once_and_the_step_runs_eagerly(monkeypatch, tmp_path):
    from torch._inductor import config  # noqa: PLC0415

    # A compiler that exists but fails: Inductor must really build, so no cache may answer.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(compiled, "_KERNELS", {})
    monkeypatch.setattr(compiled, "_BROKEN", {})
    monkeypatch.setattr(compiled, "_AVAILABLE", {})
    torch._dynamo.reset()
    try:
        with config.patch({"cpp.cxx": (None, "false"), "fx_graph_cache": False}), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            broken = trajectory("adagrad_hd", {"compiled": True}, steps=4)
            broken_kernels = dict(compiled._BROKEN)
        eager = trajectory("adagrad_hd", {"compiled": False}, steps=4)
    finally:
        torch._dynamo.reset()  # the next test compiles with the real compiler again
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len([m for m in messages if "could not compile kernel 'adagrad_update'" in m]) == 1
    assert "adagrad_update" in broken_kernels
    for a, b in zip(broken[0], eager[0]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("value", ["yes", 1, 0.5])
def test_a_bad_compiled_value_names_the_valid_choices(value):
    model, _, _ = make_regression_problem(torch.float32)
    with pytest.raises(ValueError, match=r"Invalid compiled value: .* \(valid: None, True or False\)"):
        create_optimizer("adam_hd", model.parameters(), compiled=value)


@pytest.mark.parametrize("name", ["sgdn_hd", "adagrad_hd", "rmsprop_hd", "rescaled_sgd", "adam_hd", "enhanced_sgd"])
def test_one_compiled_kernel_serves_groups_with_different_constants(name):
    # A regression test: a 0-dim tensor given as torch.add's alpha was baked into the traced
    # graph, so a second optimizer with another weight decay silently reused the first one's.
    for weight_decay in (0.01, 0.05, 0.0, 0.01):
        settings = {"weight_decay": weight_decay}
        compiled_run = trajectory(name, {**settings, "compiled": True}, torch.float64, steps=4)
        reference_run = trajectory(name, {**settings, "fused": False}, torch.float64, steps=4)
        assert_trajectories_close(compiled_run, reference_run, 1e-12, 1e-14, 1e-10)


def test_half_precision_groups_stay_eager_and_compiled_true_says_why(monkeypatch):
    monkeypatch.setattr(compiled, "COMPILE_MIN_NUMEL", 1)
    monkeypatch.setattr(compiled, "COMPILE_AFTER_STEPS", 0)
    model, inputs, targets = make_regression_problem(torch.float32)
    model = model.to(torch.bfloat16)
    before = compiled.CALLS.copy()
    auto = create_optimizer("adagrad_hd", model.parameters())
    for _ in range(3):
        auto.zero_grad()
        regression_loss(model, inputs.bfloat16(), targets.bfloat16()).backward()
        auto.step()
    assert compiled.CALLS == before
    with pytest.raises(RuntimeError, match=r"compiled=True supports float32 and float64 params, got torch.bfloat16"):
        create_optimizer("adagrad_hd", model.parameters(), compiled=True)  # refused at construction
