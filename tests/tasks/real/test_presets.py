"""Presets and suites are plain data whose every row names a registered task and a valid optimizer."""

from __future__ import annotations

import pytest

from gradretention.optim import create_optimizer
from gradretention.optim.spec import parse_spec
from gradretention.tasks.presets import PRESETS, SUITES, get_preset, suite_runs, with_defaults
from gradretention.tasks.registry import available_tasks


def _hyper(spec: str) -> tuple[str, dict]:
    return parse_spec(spec)


def test_seed_plan_holds_the_plans_numbers():
    preset = get_preset("seed-plan")
    settings = (preset.batch_size, preset.lr, preset.weight_decay, preset.dropout, preset.epochs)
    assert settings == (32, 1e-3, 1e-4, 0.5, 50)
    assert preset.optimizer_spec("adam") == "adam[lr=0.001,weight_decay=0.0001]"
    assert preset.optimizer_spec("sgd[lr=0.1]") == "sgd[lr=0.1,weight_decay=0.0001]"  # the user's value wins


def test_hd_paper_suite_matches_the_paper_settings():
    runs = suite_runs("hd-paper")
    assert [(r.task, r.epochs) for r in runs[::6]] == [("mnist-logreg", 20), ("mnist-mlp", 100), ("cifar10-vgg16", 200)]
    assert {r.batch_size for r in runs} == {128}
    by_task: dict[str, dict[str, dict]] = {}
    for run in runs:
        name, values = _hyper(run.optimizer)
        by_task.setdefault(run.task, {})[name] = values
        assert values["lr"] == 1e-3 and values["weight_decay"] == 1e-4
    for task, optimizers in by_task.items():
        assert sorted(optimizers) == ["adam", "adam_hd", "nesterov", "sgd", "sgd_hd", "sgdn_hd"]
        assert optimizers["sgd_hd"]["hypergrad_lr"] == 1e-3 and optimizers["sgdn_hd"]["hypergrad_lr"] == 1e-3
        assert optimizers["sgdn_hd"]["momentum"] == 0.9 and optimizers["nesterov"]["momentum"] == 0.9
        assert optimizers["adam_hd"]["hypergrad_lr"] == (1e-8 if task == "cifar10-vgg16" else 1e-7)


def test_variance_plan_crosses_four_tasks_with_five_optimizers_on_five_seeds():
    runs = suite_runs("variance-plan")
    assert sorted({r.task for r in runs}) == ["cifar10-resnet18", "imdb-lstm", "mnist-cnn", "squad-bert"]
    assert sorted({_hyper(r.optimizer)[0] for r in runs}) == ["adagrad", "adam", "adam_var", "rmsprop", "sgd"]
    assert len(runs) == 20 and {r.seeds for r in runs} == {(0, 1, 2, 3, 4)}
    assert {(r.epochs, r.batch_size) for r in runs} == {(50, 32)}
    variance = _hyper(next(r.optimizer for r in runs if r.optimizer.startswith("adam_var")))[1]
    assert variance == {"lr": 1e-3, "lr_scaling": 0.1, "variance_smoothing": 0.9, "weight_decay": 1e-4}


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_every_suite_row_names_a_registered_task_and_a_valid_optimizer(suite):
    import torch

    for run in suite_runs(suite):
        assert run.task in available_tasks()
        optimizer = create_optimizer(run.optimizer, [torch.nn.Parameter(torch.zeros(2))])
        if suite in ("hd-paper", "variance-plan"):  # the others also sweep α₀ or run the seed's lrs
            assert optimizer.param_groups[0]["lr"] == 1e-3


def test_unknown_names_suggest_the_closest():
    expected = rf"Unknown suite 'hd-papr'. Did you mean 'hd-paper'\? Valid suites: {', '.join(sorted(SUITES))}"
    with pytest.raises(ValueError, match=expected):
        suite_runs("hd-papr")
    with pytest.raises(ValueError, match=r"Unknown preset 'seed'.*Valid presets: seed-plan"):
        get_preset("seed")
    assert set(PRESETS) == {"seed-plan"}


def test_with_defaults_keeps_given_values_and_canonicalises():
    assert with_defaults("adam_hd[hypergrad_lr=1e-8]", lr=0.001) == "adam_hd[hypergrad_lr=1e-08,lr=0.001]"
