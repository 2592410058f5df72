"""Checkpoints: a resumed run continues bit for bit; writes are atomic; loads are weights_only."""

from __future__ import annotations

import pickle

import pytest
import torch

from gradretention.bench.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    read_checkpoint_extra,
    save_checkpoint,
)
from gradretention.optim import create_optimizer
from gradretention.tasks.registry import get_task

SPEC = "adam_hd[hypergrad_lr=1e-05]"  # carries controller state (the lr and its hypergradient memory)


def _steps(task, data, model, optimizer, generator, count):
    model.train()
    for _ in range(count):
        inputs, targets = data.train.batch(torch.randperm(len(data.train), generator=generator)[:4])

        def closure():
            optimizer.zero_grad()
            loss = task.batch_loss(model, inputs, targets)
            loss.backward()
            return loss

        optimizer.step(closure)


def _fresh(task, data, seed):
    torch.manual_seed(seed)
    model = task.build_model(data.num_classes)
    return model, create_optimizer(SPEC, model.parameters())


def test_a_resumed_run_continues_identically(data_dir, tmp_path):
    # mnist-cnn has dropout, so the global RNG must be restored too.
    task = get_task("mnist-cnn")
    data = task.load(0, data_dir)
    model, optimizer = _fresh(task, data, 0)
    generator = torch.Generator().manual_seed(0)
    _steps(task, data, model, optimizer, generator, 6)

    resumed, resumed_optimizer = _fresh(task, data, 0)
    resumed_generator = torch.Generator().manual_seed(0)
    _steps(task, data, resumed, resumed_optimizer, resumed_generator, 3)
    path = save_checkpoint(tmp_path / "run.pt", resumed, resumed_optimizer, epoch=3,
                           extra={"task": task.name, "generator": resumed_generator.get_state()})  # fmt: skip

    torch.rand(1000)  # the process moves on: another init, other random draws
    restarted, restarted_optimizer = _fresh(task, data, 99)
    state = load_checkpoint(path, restarted, restarted_optimizer)
    restarted_generator = torch.Generator()
    restarted_generator.set_state(state.extra["generator"])
    _steps(task, data, restarted, restarted_optimizer, restarted_generator, 3)

    assert state.epoch == 3 and state.extra["task"] == "mnist-cnn"
    for expected, got in zip(model.state_dict().values(), restarted.state_dict().values()):
        assert torch.equal(expected, got)
    assert optimizer.param_groups[0]["lr"] == restarted_optimizer.param_groups[0]["lr"]
    assert optimizer.param_groups[0]["lr"] != 1e-3  # the hypergradient moved it: the state mattered


def test_restore_rng_false_leaves_the_global_generator_alone(tmp_path):
    model = torch.nn.Linear(2, 2)
    path = save_checkpoint(tmp_path / "c.pt", model, None, epoch=0)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    load_checkpoint(path, model, restore_rng=False)
    assert torch.equal(torch.rand(3), expected)


def test_a_failed_write_keeps_the_previous_checkpoint_whole(tmp_path):
    model = torch.nn.Linear(2, 2)
    path = save_checkpoint(tmp_path / "c.pt", model, None, epoch=1)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint(path, model, None, epoch=2, extra={"not data": lambda: None})
    assert read_checkpoint_extra(path).epoch == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


class _Payload:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_a_pickle_that_asks_for_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "gradretention.checkpoint", "version": 1, "epoch": 0, "extra": _Payload()}, path)
    with pytest.raises(ValueError, match=rf"{path}: not a readable checkpoint \(torch.load with weights_only=True"):
        load_checkpoint(path, torch.nn.Linear(2, 2))


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt", torch.nn.Linear(2, 2))
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a gradretention checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt", torch.nn.Linear(2, 2))
    path = save_checkpoint(tmp_path / "small.pt", torch.nn.Linear(2, 2), None, epoch=0)
    with pytest.raises(ValueError, match="the model state does not fit Linear"):
        load_checkpoint(path, torch.nn.Linear(3, 2))
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="saved without an optimizer state"):
        load_checkpoint(path, model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="epoch must be an int >= 0, got -1"):
        save_checkpoint(tmp_path / "x.pt", model, None, epoch=-1)


def test_checkpoint_paths_live_under_the_sweep_folder(tmp_path):
    assert checkpoint_path(tmp_path, "3f2a9c0d1e2b4a5c") == tmp_path / "checkpoints" / "3f2a9c0d1e2b4a5c.pt"
    for bad in ("", "../escape", ".hidden"):
        with pytest.raises(ValueError, match="run_id must be a plain file name"):
            checkpoint_path(tmp_path, bad)
