"""The torch.optim contract, over every registry name: copy, pickle, half precision, complex
params, hyperparameters in state_dict, errors at construction, torch's keywords, schedulers."""

from __future__ import annotations

import copy
import pickle
import warnings

import pytest
import torch

from gradretention.optim import EnhancedSGD, available_optimizers, create_optimizer, optimizer_info
from tests.optim.conftest import make_regression_problem, regression_loss

NAMES = available_optimizers()
OURS = [name for name in NAMES if optimizer_info(name)["family"] != "baseline"]
BASELINES = [name for name in NAMES if optimizer_info(name)["family"] == "baseline"]


def train(model, opt, inputs, targets, steps, sign=1.0):
    """``steps`` steps on ``sign``·loss; EnhancedSGD gets the loss it minimises (or maximises)."""
    for _ in range(steps):
        opt.zero_grad()
        loss = sign * regression_loss(model, inputs, targets)
        loss.backward()
        opt.step(loss=loss) if isinstance(opt, EnhancedSGD) else opt.step()


def reference_options(name: str) -> dict:
    """The keyword that selects the readable per-tensor loop: ``fused=False`` or torch's ``foreach=False``."""
    return {"foreach": False} if name in BASELINES else {"fused": False}


# --- copy.deepcopy and pickle ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("name", NAMES)
def test_a_copied_or_pickled_optimizer_continues_bit_for_bit(name, how):
    model, inputs, targets = make_regression_problem(torch.float32)
    opt = create_optimizer(name, model.parameters())
    train(model, opt, inputs, targets, 3)
    # Model and optimizer copied together, so the copy's state is keyed by the copy's params.
    twin, twin_opt = copy.deepcopy((model, opt)) if how == "deepcopy" else pickle.loads(pickle.dumps((model, opt)))
    train(model, opt, inputs, targets, 4)
    train(twin, twin_opt, inputs, targets, 4)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)
    assert [float(g["lr"]) for g in opt.param_groups] == [float(g["lr"]) for g in twin_opt.param_groups]


# --- half precision ---------------------------------------------------------------------------


def half_error(name: str, dtype: torch.dtype, steps: int = 20, **options) -> tuple[float, list[torch.Tensor]]:
    """Max |θ − θ_float64| after ``steps`` steps from the same start, and the params."""
    exact, inputs, targets = make_regression_problem(torch.float64)
    low = copy.deepcopy(exact).to(dtype)
    for model, data in ((exact, (inputs, targets)), (low, (inputs.to(dtype), targets.to(dtype)))):
        opt = create_optimizer(name, model.parameters(), **options)
        train(model, opt, *data, steps)
    error = max(float((a.double() - b).abs().max()) for a, b in zip(low.parameters(), exact.parameters()))
    return error, [p.detach().clone() for p in low.parameters()]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", NAMES)
def test_half_precision_stays_within_the_reference_loops_error_and_reruns_agree(name, dtype):
    default, params = half_error(name, dtype)
    reference, _ = half_error(name, dtype, **reference_options(name))
    _, rerun = half_error(name, dtype)
    tolerance = 1e-3 if dtype == torch.float16 else 1e-2  # a few units in the last place of the params
    assert default <= 2 * reference + tolerance, (default, reference)
    assert all(torch.equal(a, b) for a, b in zip(params, rerun))


# --- complex params ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", OURS)
def test_complex_params_are_refused_at_construction(name):
    with pytest.raises(ValueError, match=r"does not support complex parameters .*complex64.*view_as_real"):
        create_optimizer(name, [torch.nn.Parameter(torch.zeros(3, dtype=torch.complex64))])


def test_a_complex_param_added_later_is_refused_too():
    opt = create_optimizer("adam_hd", [torch.nn.Parameter(torch.zeros(3))])
    with pytest.raises(ValueError, match="complex"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2, dtype=torch.complex128))]})


# --- every hyperparameter round-trips through state_dict ----------------------------------------

ALTERNATIVES = {
    "lr": 0.0123, "momentum": 0.55, "weight_decay": 0.01, "betas": (0.8, 0.95), "eps": 1e-6, "lr_decay": 0.01,
    "initial_accumulator_value": 0.1, "alpha": 0.9, "centered": True, "amsgrad": True, "hypergrad_lr": 2e-4,
    "hypergrad_momentum": 0.8, "hypergrad_betas": (0.85, 0.99), "hypergrad_eps": 1e-7, "lr_bounds": (-1.0, 1.0),
    "multiplicative": True, "compiled": False, "foreach": False, "maximize": True, "variance_smoothing": 0.8,
    "lr_scaling": 0.2, "min_factor": 0.05, "max_factor": 5.0, "base_lr": 1e-4, "decay": 0.8, "retain_min": False,
    "update": "magnitude", "clip_factor": 2.0, "noise_scale": 1e-3, "centering": False, "q_lr": 0.3,
    "discount": 0.7, "epsilon": 0.25, "epsilon_decay": 0.9, "epsilon_min": 0.05, "nudge": 0.1, "spike_factor": 2.5,
    "bayesian_init_std": 0.1, "seed": 7, "noise_pool": 1024, "reward": "spec", "q_interval": 5, "cosine_offset": 0.2,
    "loss_spike": 1.0, "loss_smoothing": 0.5, "trust_ratio": 0.3, "etas": (0.4, 1.3), "step_sizes": (0.02, 0.5),
    "hyper_hypergrad_lr": 0.3, "signal_smoothing": 0.8, "significance": 1.5, "spike_patience": 3,
}
KEEP = {"fused", "capturable", "differentiable", "nesterov"}
"""Kept at their defaults: their other values need a device or a pairing (nesterov needs momentum)."""


def alternatives(name: str) -> dict:
    defaults = optimizer_info(name)["defaults"]
    values = {key: ALTERNATIVES[key] for key in defaults if key not in KEEP | {"dampening"}}
    if "dampening" in defaults:
        values["dampening"] = 0.0 if defaults.get("nesterov") else 0.1
    if name not in ("adam", "adamw"):
        values.pop("amsgrad", None)  # a key of torch's Adam and AdamW only
    return values


def saved_value(opt, key):
    """Where an optimizer keeps hyperparameter ``key``: its first group, or EnhancedSGD's settings."""
    group = opt.param_groups[0]
    if key in group:
        return group[key]
    if key == "epsilon":
        return opt.controller.epsilon
    return opt.hyperparameters()[key]


@pytest.mark.parametrize("name", NAMES)
def test_every_hyperparameter_round_trips_through_state_dict(name):
    values = alternatives(name)
    assert set(values) | KEEP | {"dampening"} >= set(optimizer_info(name)["defaults"])
    opt = create_optimizer(name, [torch.nn.Parameter(torch.zeros(3))], **values)
    fresh = create_optimizer(name, [torch.nn.Parameter(torch.zeros(3))])
    fresh.load_state_dict(pickle.loads(pickle.dumps(opt.state_dict())))
    for key, value in values.items():
        saved = saved_value(fresh, key)
        assert (tuple(saved) if isinstance(saved, list) else saved) == value, key


def test_enhanced_sgd_with_epsilon_zero_stays_greedy():
    model, inputs, targets = make_regression_problem()
    opt = EnhancedSGD(model.parameters(), epsilon=0.0)
    train(model, opt, inputs, targets, 5)
    assert opt.controller.epsilon == 0.0


# --- errors at construction and torch's keywords ------------------------------------------------

CONSTRUCTION_ERRORS = [
    ("adagrad_hd", {"fused": True}, r"Invalid fused value: True for ComposedOptimizer \(rule 'adagrad'.*valid: None or False"),
    ("rmsprop_var", {"fused": True}, r"Invalid fused value: True"),
    ("adam_hd", {"fused": True, "maximize": True}, r"Invalid fused value: True"),
    ("rescaled_sgd", {"fused": True, "foreach": False}, r"Invalid fused value: True for RescaledSGD"),
    ("adam_hd", {"capturable": True}, r"Invalid capturable value: True .*valid: False; CUDA-graph capture"),
    ("sgd_var", {"differentiable": True}, r"Invalid differentiable value: True"),
    ("rescaled_sgd", {"capturable": True}, r"Invalid capturable value: True for RescaledSGD"),
    ("enhanced_sgd", {"differentiable": True}, r"Invalid differentiable value: True for EnhancedSGD"),
    ("sgd_hd", {"maximize": "yes"}, r"Invalid maximize value: 'yes' \(valid: True or False\)"),
    ("adam_var", {"foreach": 1}, r"Invalid foreach value: 1 \(valid: None, True or False\)"),
    ("enhanced_sgd", {"noise_pool": 0}, r"Invalid noise_pool value: 0"),
    ("rescaled_sgd", {"base_lr": 1.0, "lr": 0.1}, r"Invalid base_lr value: 1.0"),
]


@pytest.mark.parametrize("name,options,message", CONSTRUCTION_ERRORS, ids=[f"{r[0]}-{sorted(r[1])}" for r in CONSTRUCTION_ERRORS])
def test_invalid_settings_raise_at_construction(name, options, message):
    with pytest.raises(ValueError, match=message):
        create_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], **options)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw", "adagrad"])
def test_torch_baselines_accept_fused_true(name):
    opt = create_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], fused=True)
    assert opt.param_groups[0]["fused"] is True


@pytest.mark.parametrize("name", NAMES)
def test_foreach_false_runs_the_reference_loop_with_the_same_trajectory(name):
    model, inputs, targets = make_regression_problem()
    twin = copy.deepcopy(model)
    train(model, create_optimizer(name, model.parameters()), inputs, targets, 5)
    train(twin, create_optimizer(name, twin.parameters(), foreach=False), inputs, targets, 5)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_maximize_ascends_as_minimising_the_negated_loss(name):
    model, inputs, targets = make_regression_problem()
    twin = copy.deepcopy(model)
    train(model, create_optimizer(name, model.parameters(), maximize=True), inputs, targets, 5, sign=-1.0)
    train(twin, create_optimizer(name, twin.parameters()), inputs, targets, 5, sign=1.0)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", OURS)
def test_torch_keywords_at_their_defaults_are_accepted(name):
    opt = create_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], foreach=None, maximize=False,
                           capturable=False, differentiable=False)
    assert {key: opt.param_groups[0][key] for key in ("foreach", "maximize", "capturable", "differentiable")} == \
        {"foreach": None, "maximize": False, "capturable": False, "differentiable": False}


# --- schedulers that recompute lr from initial_lr -----------------------------------------------

S = torch.optim.lr_scheduler
ADAPTIVE = [name for name in OURS
            if getattr(getattr(create_optimizer(name, [torch.nn.Parameter(torch.zeros(1))]), "controller", None),
                       "device_lr", False)]
"""The names whose controller adapts α on the device (hypergradient, variance, log-α): they watch for schedulers."""

RECOMPUTING = {
    "LambdaLR": lambda opt: S.LambdaLR(opt, lambda step: 0.8**step),  # a changing λ: no repeated value to spot
    "OneCycleLR": lambda opt: S.OneCycleLR(opt, max_lr=0.05, total_steps=10),
    "CyclicLR": lambda opt: S.CyclicLR(opt, base_lr=0.005, max_lr=0.02, step_size_up=2),
    "CosineAnnealingWarmRestarts": lambda opt: S.CosineAnnealingWarmRestarts(opt, T_0=3),
    "SequentialLR": lambda opt: S.SequentialLR(opt, [S.LinearLR(opt, 0.5, total_iters=2), S.ExponentialLR(opt, 0.9)],
                                               milestones=[2]),
}
CHAINABLE = {
    "StepLR": lambda opt: S.StepLR(opt, step_size=2, gamma=0.5),
    "MultiStepLR": lambda opt: S.MultiStepLR(opt, milestones=[2, 4], gamma=0.5),
    "ExponentialLR": lambda opt: S.ExponentialLR(opt, gamma=0.9),
    "CosineAnnealingLR": lambda opt: S.CosineAnnealingLR(opt, T_max=4),
    "LinearLR": lambda opt: S.LinearLR(opt, start_factor=0.5, total_iters=3),
    "ConstantLR": lambda opt: S.ConstantLR(opt, factor=0.5, total_iters=3),
    "PolynomialLR": lambda opt: S.PolynomialLR(opt, total_iters=8),
    "MultiplicativeLR": lambda opt: S.MultiplicativeLR(opt, lambda step: 0.9),
    "ReduceLROnPlateau": lambda opt: S.ReduceLROnPlateau(opt, patience=0),
    "ChainedScheduler": lambda opt: S.ChainedScheduler([S.StepLR(opt, 2, 0.5), S.ExponentialLR(opt, 0.9)]),
}


def _scheduled_run(name: str, make_scheduler, **options) -> list[warnings.WarningMessage]:
    model, inputs, targets = make_regression_problem()
    opt = create_optimizer(name, model.parameters(), lr=0.01, **options)
    scheduler = make_scheduler(opt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(6):
            train(model, opt, inputs, targets, 1)
            scheduler.step(1.0) if isinstance(scheduler, S.ReduceLROnPlateau) else scheduler.step()
    return [w for w in caught if "initial_lr" in str(w.message)]


@pytest.mark.parametrize("name", ADAPTIVE)
def test_lambda_lr_with_a_changing_lambda_warns_naming_it_and_the_alternative(name):
    caught = _scheduled_run(name, RECOMPUTING["LambdaLR"])
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("LambdaLR sets lr = initial_lr·λ(t) every step") and "MultiplicativeLR" in message


@pytest.mark.parametrize("scheduler", sorted(RECOMPUTING))
@pytest.mark.parametrize("name", ["sgd_hd", "adam_hd_adam", "sgd_var"])
def test_every_scheduler_that_recomputes_lr_from_initial_lr_warns_once_naming_it(name, scheduler):
    caught = _scheduled_run(name, RECOMPUTING[scheduler])
    assert len(caught) == 1 and str(caught[0].message).startswith(scheduler)


def test_a_recomputing_scheduler_inside_a_chain_is_found():
    caught = _scheduled_run("sgd_hd", lambda opt: S.ChainedScheduler([S.StepLR(opt, 2, 0.5), RECOMPUTING["LambdaLR"](opt)]))
    assert len(caught) == 1 and str(caught[0].message).startswith("LambdaLR")


@pytest.mark.parametrize("scheduler", sorted(CHAINABLE))
@pytest.mark.parametrize("name", ADAPTIVE)
def test_chainable_schedulers_compose_without_a_warning(name, scheduler):
    assert _scheduled_run(name, CHAINABLE[scheduler]) == []


def test_a_scheduler_that_keeps_alpha_still_is_not_mistaken_for_lambda_lr():
    # hypergrad_lr=0: α never moves, so StepLR writes the same value twice (a value test would warn).
    assert _scheduled_run("sgd_hd", CHAINABLE["StepLR"], hypergrad_lr=0.0) == []


def test_lambda_lr_replaces_the_adapted_alpha_and_its_multiplicative_form_scales_it():
    """What the warning says: LambdaLR writes initial_lr·λ(t) whatever α became; MultiplicativeLR
    with factor λ(t)/λ(t−1) multiplies the adapted α by it."""
    lam = lambda step: 0.8**step  # noqa: E731
    for make, expected in ((lambda opt: S.LambdaLR(opt, lam), lambda adapted, t: 0.01 * lam(t)),
                           (lambda opt: S.MultiplicativeLR(opt, lambda epoch: lam(epoch) / lam(epoch - 1)),
                            lambda adapted, t: adapted * lam(t) / lam(t - 1))):
        model, inputs, targets = make_regression_problem()
        opt = create_optimizer("sgd_hd", model.parameters(), lr=0.01, hypergrad_lr=0.1)
        scheduler = make(opt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for t in range(1, 5):
                before = float(opt.param_groups[0]["lr"])
                train(model, opt, inputs, targets, 1)
                adapted = float(opt.param_groups[0]["lr"])
                scheduler.step()
                assert t == 1 or adapted != pytest.approx(before, rel=1e-6)  # from step 2 the controller moves α
                assert float(opt.param_groups[0]["lr"]) == pytest.approx(expected(adapted, t), rel=1e-12)
