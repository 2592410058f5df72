"""NaN and inf in losses and gradients, a negative lr, zero variance: documented handling or ``diverged``.

Runner level: every registry optimizer trains a task whose model injects the fault at
step 4 (:mod:`.fault_tasks`); each run must end as ``diverged`` with the step and the
value in its reason, and be stored as such. Optimizer level: the behaviour each
docstring promises for the degenerate cases it names, checked by hand-computed values.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from gradretention.bench.config import SweepConfig
from gradretention.bench.results import RunConfig
from gradretention.bench.runner import train
from gradretention.bench.store import ResultsStore
from gradretention.bench.sweep import run_sweep
from gradretention.optim import (
    SGDHD,
    EnhancedSGD,
    RescaledSGD,
    available_optimizers,
    create_optimizer,
    optimizer_info,
)
from gradretention.optim.controllers import hypergradient

from .fault_tasks import FAULTS, fault_task, registered

AT = 4  # the poisoned training step; the log step too (log_every=2), so the loss window ends there


@pytest.fixture(scope="module")
def fault_tasks():
    with registered(*(fault_task(fault, AT) for fault in FAULTS)) as tasks:
        yield dict(zip(FAULTS, tasks))


@pytest.mark.parametrize("fault", FAULTS)
def test_every_registry_optimizer_records_an_injected_fault_as_diverged_with_step_and_value(fault_tasks, fault):
    # A poisoned loss is caught at its own step; a poisoned gradient leaves that step's loss
    # finite, makes the update non-finite, and the next step's loss shows it.
    first_bad = AT if fault.endswith("_loss") else AT + 1
    value = "inf" if fault == "inf_loss" else "nan"
    outcomes = {}
    for name in available_optimizers():
        result = train(RunConfig(task=fault_tasks[fault].name, optimizer=name, max_steps=3 * AT, log_every=2))
        outcomes[name] = (result.status, result.reason)
        losses = [p.value for p in result.curves if p.name == "loss" and p.step < first_bad]
        assert losses and all(math.isfinite(v) for v in losses), name  # what came before is kept, finite
    expected = ("diverged", f"training loss {value} at step {first_bad} is not finite")
    assert outcomes == dict.fromkeys(available_optimizers(), expected)


def test_a_sweep_stores_the_diverged_runs_with_their_reason(tmp_path, fault_tasks):
    config = SweepConfig(tasks=(fault_tasks["nan_grad"].name,), optimizers=("adam_hd", "rescaled_sgd"), seeds=1,
                         lr_factors=(), max_steps=3 * AT, log_every=2, workers=1, out=str(tmp_path))  # fmt: skip
    run_sweep(config)
    with ResultsStore(tmp_path, read_only=True) as store:
        runs = store.runs()
        curves = store.curves()
    assert sorted(runs["status"]) == ["diverged", "diverged"]
    assert set(runs["reason"]) == {f"training loss nan at step {AT + 1} is not finite"}
    # A diverged model's scores are noise: none are recorded.
    assert "test_accuracy" not in runs.columns or runs["test_accuracy"].isna().all()
    assert len(curves) > 0 and set(curves["run_id"]) == set(runs["run_id"])


# An lr driven negative: the hypergradient may take α below zero (specs/algorithms.md §2.1).


def _quadratic_steps(optimizer, param, steps):
    lrs = []
    for _ in range(steps):
        optimizer.zero_grad()
        (param.square().sum() / 2).backward()  # f(θ) = |θ|²/2, so g = θ
        optimizer.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_sgd_hd_takes_alpha_negative_by_hand_and_keeps_stepping():
    # θ0 = (1, −2), α0 = 1.5, β = 10. Step 1: h = 0, θ1 = θ0 − 1.5 θ0 = (−0.5, 1).
    # Step 2: h = ⟨g2, d1⟩ = ⟨(−0.5, 1), (1, −2)⟩ = −2.5, α2 = 1.5 + 10·(−2.5) = −23.5,
    # θ2 = θ1 + 23.5·θ1 = (−12.25, 24.5): a step up the slope, as the paper allows.
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    lrs = _quadratic_steps(SGDHD([param], lr=1.5, hypergrad_lr=10.0), param, 2)
    assert lrs == [1.5, -23.5]
    assert param.tolist() == [-12.25, 24.5]


def test_lr_bounds_clamp_the_same_negative_alpha_to_the_floor():
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    lrs = _quadratic_steps(SGDHD([param], lr=1.5, hypergrad_lr=10.0, lr_bounds=(0.0, 2.0)), param, 2)
    assert lrs == [1.5, 0.0] and param.tolist() == [-0.5, 1.0]  # α = 0: θ stays at θ1


@pytest.mark.parametrize("fused", ["none", "false"])
@pytest.mark.parametrize("name", ["sgd_hd", "sgdn_hd", "adam_hd", "rmsprop_hd", "sgd_hd_adam"])
def test_negative_alpha_runs_on_the_reference_and_fused_paths(name, fused):
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    lrs = _quadratic_steps(create_optimizer(f"{name}[lr=1.5,hypergrad_lr=10.0,fused={fused}]", [param]), param, 4)
    assert min(lrs) < 0 and all(math.isfinite(lr) for lr in lrs)


def test_a_run_whose_alpha_goes_negative_is_recorded_with_the_negative_lrs(tmp_path):
    result = train(RunConfig(task="spiral", optimizer="sgd_hd[hypergrad_lr=1.0,lr=1.0]", max_steps=60, log_every=1))
    lrs = [p.value for p in result.curves if p.name == "lr"]
    assert result.status == "done" and min(lrs) < 0 < max(lrs)
    with ResultsStore(tmp_path) as store:
        store.record(result)
        stored = store.curves()
    assert stored[stored["name"] == "lr"]["value"].tolist() == lrs


def test_the_hypergradient_docstrings_say_that_alpha_may_go_negative():
    for documented in (hypergradient, hypergradient.HypergradientController, SGDHD):
        assert "negative" in inspect.getdoc(documented).lower(), documented


def test_lr_bounds_keep_alpha_in_bounds_for_huge_but_finite_float32_gradients():
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(50))
    optimizer = create_optimizer("sgd_hd[lr_bounds=(0.0,0.1)]", [param])
    for _ in range(3):
        param.grad = torch.randn_like(param) * 1e30
        optimizer.step()
        assert 0.0 <= optimizer.param_groups[0]["lr"] <= 0.1


# Zero variance and other degenerate statistics, as each docstring describes them.


@pytest.mark.parametrize("rule", ["adam", "sgd", "sgdn", "rmsprop", "adagrad"])
@pytest.mark.parametrize("gradient", [0.0, 0.5])
def test_the_variance_controller_holds_alpha_when_the_gradient_variance_is_zero(rule, gradient):
    # Var(g) = 0 every step: v_t = 0, r_t = (0 − 0)/(0 + ε) = 0, so α_t = α_0 exactly.
    param = torch.nn.Parameter(torch.ones(6))
    optimizer = create_optimizer(f"{rule}_var[lr=0.01]", [param])
    for _ in range(4):
        param.grad = torch.full_like(param, gradient)
        optimizer.step()
        assert optimizer.param_groups[0]["lr"] == 0.01
        assert optimizer.param_groups[0]["variance_change"] == 0.0
    assert torch.isfinite(param).all()


def test_the_variance_controller_propagates_a_non_finite_variance_as_documented():
    param = torch.nn.Parameter(torch.ones(4))
    optimizer = create_optimizer("adam_var", [param])
    param.grad = torch.tensor([1.0, math.inf, 2.0, 3.0])
    optimizer.step()
    assert optimizer.param_groups[0]["lr"] == 0.01  # r_1 = 0 by definition: the first step keeps α_0
    param.grad = torch.tensor([1.0, 2.0, 3.0, 4.0])
    optimizer.step()
    assert math.isnan(optimizer.param_groups[0]["lr"])  # "α becomes NaN, so a diverged run shows as diverged"


def test_rescaled_sgd_moves_equal_magnitudes_at_base_lr():
    # All |m| equal: s = 0 (no 0/0), η = base_lr, θ ← θ − base_lr·sign(m).
    param = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = RescaledSGD([param], lr=0.1, base_lr=0.01)
    param.grad = torch.tensor([3.0, -3.0, 3.0], dtype=torch.float64)
    optimizer.step()
    assert param.tolist() == [-0.01, 0.01, -0.01]


def test_enhanced_sgd_skips_clipping_when_sigma_is_zero():
    # One scalar: σ² = 0, where ±c·σ would clip the gradient to 0. Greedy on untrained tables
    # holds every scale at 1, so the step is momentum SGD's first: θ1 = θ0 − lr·g.
    param = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
    optimizer = EnhancedSGD([param], lr=0.1, epsilon=0.0, noise_scale=0.0, clip_factor=3.0)
    param.grad = torch.tensor(2.0, dtype=torch.float64)
    optimizer.step(loss=1.0)
    assert param.item() == pytest.approx(0.8, abs=1e-15)


@pytest.mark.parametrize("loss", [math.nan, math.inf])
def test_enhanced_sgd_halves_lr_scale_on_a_non_finite_loss_and_learns_nothing_from_it(loss):
    param = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = EnhancedSGD([param], lr=0.1, epsilon=0.0, noise_scale=0.0)
    tables = [[row[:] for row in table] for table in optimizer.controller.tables.values()]
    param.grad = torch.ones(3, dtype=torch.float64)
    optimizer.step(loss=loss)
    assert optimizer.controller.scales["lr_scale"] == 0.5
    assert [table for table in optimizer.controller.tables.values()] == tables
    assert optimizer.controller.pending is None and torch.isfinite(param).all()


def test_hdm_with_a_zero_gradient_keeps_alpha_instead_of_dividing_by_zero():
    param = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = create_optimizer("sgd_hd[multiplicative=true,hypergrad_lr=0.1,lr=0.01]", [param])
    for gradient in (1.0, 0.0, 0.0):
        param.grad = torch.full_like(param, gradient)
        optimizer.step()
        assert optimizer.param_groups[0]["lr"] == 0.01  # h/(‖g‖‖d‖) with ‖g‖ = 0 or ‖d‖ = 0: no change


def _moves_without_gradient(name: str) -> bool:
    """Gradient noise (EnhancedSGD's noise_scale) or default weight decay (AdamW's decoupled 0.01)."""
    defaults = optimizer_info(name)["defaults"]
    return defaults.get("noise_scale", 0) > 0 or defaults.get("weight_decay", 0) > 0


@pytest.mark.parametrize("name", available_optimizers())
def test_all_zero_gradients_leave_every_optimizer_without_noise_or_decay_where_it_was(name):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]
    start = [p.detach().clone() for p in params]
    optimizer = create_optimizer(name, params)
    for _ in range(3):
        for param in params:
            param.grad = torch.zeros_like(param)
        optimizer.step(lambda: torch.tensor(1.0))
    assert all(torch.isfinite(p).all() for p in params)
    assert all(math.isfinite(group["lr"]) for group in optimizer.param_groups)
    if not _moves_without_gradient(name):
        assert all(torch.equal(p, s) for p, s in zip(params, start)), name
