"""The registry API and its error table: (spec, overrides, exception, message regex)."""

from __future__ import annotations

import pytest
import torch

from gradretention.optim import SGDHD, AdamHD, create_optimizer, optimizer_info, parse_spec, resolved_hyperparameters
from gradretention.optim.spec import format_spec


def params():
    return [torch.nn.Parameter(torch.zeros(2))]


ERROR_TABLE = [
    ("adam_hdd", {}, ValueError, r"Unknown optimizer 'adam_hdd'\. Did you mean 'adam_hd'.*Valid names: .*adam, "),
    ("sgdd", {}, ValueError, r"Did you mean 'sgd'"),
    ("adam_hd[hypergrad_lr=-1e-05]", {}, ValueError, r"Invalid hypergrad_lr value: -1e-05 \(valid: >= 0\)"),
    ("adam_hd", {"lr": -0.1}, ValueError, r"Invalid lr value: -0.1 \(valid: >= 0\)"),
    ("adam_hd[betas=(0.9,1.5)]", {}, ValueError, r"Invalid betas value: \(0.9, 1.5\)"),
    ("sgd_hd[momentum=-0.1]", {}, ValueError, r"Invalid momentum value: -0.1"),
    ("adam[lr=-1]", {}, ValueError, r"Invalid lr value: -1"),
    ("adam_hd[lr_bounds=(1,0)]", {}, ValueError, r"Invalid lr_bounds value: \(1, 0\) \(valid: None or \(low, high\)"),
    ("adam_hd[momentum=0.9]", {}, ValueError, r"Unknown hyperparameter\(s\) momentum for optimizer 'adam_hd'; valid: .*betas"),
    ("momentum", {"bogus": 1}, ValueError, r"Unknown hyperparameter\(s\) bogus for optimizer 'momentum'; valid: .*lr"),
    ("adam_hd[lr=0.1", {}, ValueError, r"Malformed optimizer spec"),
    ("adam_hd[lr=0.1,lr=0.2]", {}, ValueError, r"Duplicate key 'lr'"),
    ("adam_hd[lr=__import__('os')]", {}, ValueError, r"Cannot parse value|Unbalanced|Malformed"),
    ("adam_hd[lr]", {}, ValueError, r"Malformed item 'lr'"),
    ("adam_hd[hypergrad_lr=abc]", {}, ValueError, r"Invalid hypergrad_lr value: 'abc'"),
]


@pytest.mark.parametrize("spec,overrides,exception,message", ERROR_TABLE, ids=[row[0] for row in ERROR_TABLE])
def test_bad_input_raises_a_clear_error(spec, overrides, exception, message):
    with pytest.raises(exception, match=message):
        create_optimizer(spec, params(), **overrides)


@pytest.mark.parametrize("factory,kwargs,message", [
    (SGDHD, {"hypergrad_lr": -1.0}, r"Invalid hypergrad_lr value: -1.0"),
    (AdamHD, {"eps": -1.0}, r"Invalid eps value: -1.0"),
    (SGDHD, {"lr_optimizer": "rmsprop"}, r"Unknown lr optimizer 'rmsprop'; valid: sgd, sgdn, adam"),
])
def test_named_classes_validate_before_construction(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        factory(params(), **kwargs)


def test_parse_spec_reads_numbers_bools_tuples_and_words():
    name, values = parse_spec("Adam_HD[lr=0.001, hypergrad_lr=1e-07, betas=(0.8,0.99), multiplicative=true, "
                              "lr_bounds=none, update=sign, steps=3]")
    assert name == "adam_hd"
    assert values == {"lr": 0.001, "hypergrad_lr": 1e-07, "betas": (0.8, 0.99), "multiplicative": True,
                      "lr_bounds": None, "update": "sign", "steps": 3}
    assert parse_spec(format_spec(name, values)) == (name, values)


def test_spec_values_and_overrides_reach_the_optimizer():
    opt = create_optimizer("adam_hd[lr=0.002,hypergrad_lr=1e-07]", params(), hypergrad_lr=1e-6)
    group = opt.param_groups[0]
    assert (group["lr"], group["hypergrad_lr"]) == (0.002, 1e-6)
    assert isinstance(create_optimizer("nesterov", params()), torch.optim.SGD)
    assert create_optimizer("nesterov", params()).param_groups[0]["nesterov"] is True


def test_resolved_hyperparameters_are_what_the_built_optimizer_holds():
    spec = "adam_lrprop[spike_patience=2,betas=(0.8,0.9)]"
    settings = resolved_hyperparameters(spec)
    group = create_optimizer(spec, params()).param_groups[0]
    assert settings["spike_patience"] == 2 and settings["betas"] == (0.8, 0.9) and settings["trust_ratio"] == 0.05
    assert all(group[key] == value for key, value in settings.items() if key in group)
    assert set(settings) == set(optimizer_info(spec)["defaults"])
    with pytest.raises(ValueError, match=r"Unknown hyperparameter\(s\) momentun for optimizer 'adam_lrprop'; valid: .*betas"):
        resolved_hyperparameters("adam_lrprop[momentun=0.9]")


def test_optimizer_info_names_class_defaults_and_paper():
    info = optimizer_info("adam_hd")
    assert info["class"].endswith("ComposedOptimizer")
    assert info["defaults"]["hypergrad_lr"] == 1e-7
    assert "1703.04782" in info["reference"]
    assert optimizer_info("adamw")["class"] == "torch.optim.adamw.AdamW"


def test_every_optimizer_of_ours_takes_fused_by_name():
    from gradretention.optim import available_optimizers, optimizer_info

    ours = [name for name in available_optimizers() if optimizer_info(name)["family"] != "baseline"]
    for name in ours:
        opt = create_optimizer(f"{name}[fused=false]", params())
        assert opt.defaults["fused"] is False, name
