"""Oracle tests: each base rule with a constant controller equals its torch.optim twin in float64."""

from __future__ import annotations

import copy

import pytest
import torch

from gradretention.optim import Adagrad, ComposedOptimizer
from tests.optim.conftest import make_regression_problem, regression_loss

STEPS = 25

ORACLE_CASES = [
    # (id, our rule, our kwargs, torch class, torch kwargs)
    ("sgd", "sgd", {}, torch.optim.SGD, {}),
    ("sgd-wd", "sgd", {"weight_decay": 0.1}, torch.optim.SGD, {"weight_decay": 0.1}),
    ("momentum-dampening", "sgd", {"momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01},
     torch.optim.SGD, {"momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("nesterov", "sgdn", {"momentum": 0.8, "weight_decay": 0.05}, torch.optim.SGD,
     {"momentum": 0.8, "nesterov": True, "weight_decay": 0.05}),
    ("adam", "adam", {}, torch.optim.Adam, {}),
    ("adam-wd-betas", "adam", {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}, torch.optim.Adam,
     {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("adagrad", "adagrad", {}, torch.optim.Adagrad, {}),
    ("adagrad-lecture", "adagrad", {"lr_decay": 1e-2, "eps": 1e-7, "initial_accumulator_value": 0.1,
                                    "weight_decay": 0.01},
     torch.optim.Adagrad, {"lr_decay": 1e-2, "eps": 1e-7, "initial_accumulator_value": 0.1, "weight_decay": 0.01}),
    ("rmsprop", "rmsprop", {}, torch.optim.RMSprop, {}),
    ("rmsprop-centered-momentum", "rmsprop", {"alpha": 0.9, "centered": True, "momentum": 0.7, "weight_decay": 0.01},
     torch.optim.RMSprop, {"alpha": 0.9, "centered": True, "momentum": 0.7, "weight_decay": 0.01}),
    ("rmsprop-momentum", "rmsprop", {"momentum": 0.5}, torch.optim.RMSprop, {"momentum": 0.5}),
]


def run_both(ours_factory, theirs_factory, steps: int = STEPS) -> float:
    """Max absolute parameter deviation between the two optimizers over ``steps`` steps."""
    model, inputs, targets = make_regression_problem()
    twin = copy.deepcopy(model)
    ours, theirs = ours_factory(model.parameters()), theirs_factory(twin.parameters())
    worst = 0.0
    for _ in range(steps):
        for net, opt in ((model, ours), (twin, theirs)):
            opt.zero_grad()
            regression_loss(net, inputs, targets).backward()
            opt.step()
        worst = max(worst, max(float((a.detach() - b.detach()).abs().max()) for a, b in zip(model.parameters(), twin.parameters())))
    return worst


@pytest.mark.parametrize("fused", [False, None], ids=["reference", "auto"])
@pytest.mark.parametrize("case", ORACLE_CASES, ids=[c[0] for c in ORACLE_CASES])
def test_base_rule_matches_torch_optim_in_float64(case, fused):
    _, rule, kwargs, torch_cls, torch_kwargs = case
    lr = 0.05
    deviation = run_both(lambda p: ComposedOptimizer(p, rule=rule, lr=lr, fused=fused, **kwargs),
                         lambda p: torch_cls(p, lr=lr, **torch_kwargs))
    assert deviation < 1e-12


def test_named_adagrad_matches_torch_with_lecture_settings():
    deviation = run_both(lambda p: Adagrad(p, lr=1.0, lr_decay=1e-4, eps=1e-7),
                         lambda p: torch.optim.Adagrad(p, lr=1.0, lr_decay=1e-4, eps=1e-7))
    assert deviation < 1e-12


def test_state_uses_torch_key_names():
    model, inputs, targets = make_regression_problem()
    expected = {"adam": {"exp_avg", "exp_avg_sq", "step"}, "adagrad": {"sum", "step"},
                "sgd": {"momentum_buffer"}}
    for rule, keys in expected.items():
        extra = {"momentum": 0.9} if rule == "sgd" else {}
        opt = ComposedOptimizer(model.parameters(), rule=rule, **extra)
        regression_loss(model, inputs, targets).backward()
        opt.step()
        assert set(opt.state[next(iter(model.parameters()))]) == keys


def test_weight_decay_never_writes_into_grad():
    model, inputs, targets = make_regression_problem()
    opt = ComposedOptimizer(model.parameters(), rule="sgd", lr=0.1, weight_decay=0.5)
    regression_loss(model, inputs, targets).backward()
    grads_before = [p.grad.clone() for p in model.parameters()]
    opt.step()
    for before, param in zip(grads_before, model.parameters()):
        assert torch.equal(before, param.grad)
