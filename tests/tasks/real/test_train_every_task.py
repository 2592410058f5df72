"""Every real-data task loads tiny files in its real format and trains three steps with a finite loss."""

from __future__ import annotations

import math

import pytest
import torch

from gradretention.bench.results import RunConfig
from gradretention.bench.runner import train
from gradretention.tasks.data_report import task_datasets
from gradretention.tasks.registry import available_tasks, get_task

# (train, val, test) sizes the conftest files give after the seeded validation carve.
EXPECTED_SIZES = {
    "mnist-logreg": (22, 2, 8), "mnist-mlp": (22, 2, 8), "mnist-cnn": (22, 2, 8),
    "fmnist-logreg": (22, 2, 8), "fmnist-mlp": (22, 2, 8), "fmnist-cnn": (22, 2, 8),
    "cifar10-cnn": (13, 2, 3), "cifar10-resnet18": (13, 2, 3), "cifar10-vgg16": (13, 2, 3),
    "imdb-lstm": (8, 1, 9), "imdb-bert": (8, 1, 9), "agnews-bert": (11, 1, 8),
    "squad-bert": (2, 1, 3), "voc-unet": (4, 1, 2),
}  # fmt: skip


def test_every_real_data_task_is_registered_and_needs_download():
    assert set(EXPECTED_SIZES) == set(task_datasets())
    for name in EXPECTED_SIZES:
        assert name in available_tasks()
        assert get_task(name).needs_download


def _three_steps(task, data) -> tuple[list[float], torch.nn.Module, bool]:
    torch.manual_seed(0)
    model = task.build_model(data.num_classes)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=task.default_lr)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(3):
        inputs, targets = data.train.batch(torch.randperm(len(data.train), generator=generator)[:4])
        if task.augment is not None:
            inputs = task.augment(inputs, generator)
        optimizer.zero_grad()
        loss = task.batch_loss(model, inputs, targets)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    moved = any(not torch.equal(old, new) for old, new in zip(before, model.parameters()))
    return losses, model, moved


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_task_trains_three_steps_on_real_format_files(name, data_dir):
    task = get_task(name)
    data = task.load(0, data_dir)
    assert (len(data.train), len(data.val), len(data.test)) == EXPECTED_SIZES[name]
    losses, model, moved = _three_steps(task, data)
    assert all(math.isfinite(loss) for loss in losses), losses
    assert moved, "the optimizer steps changed no parameter"
    metrics = task.evaluate(model, data.test)
    assert set(metrics) == {"loss", *task.metrics}
    assert math.isfinite(metrics["loss"])
    assert all(0.0 <= metrics[name] <= 1.0 for name in task.metrics), metrics


def test_same_data_seed_same_split_other_seed_other_split(data_dir):
    task = get_task("mnist-logreg")
    first, again, other = task.load(0, data_dir), task.load(0, data_dir), task.load(1, data_dir)
    assert torch.equal(first.val.inputs, again.val.inputs) and torch.equal(first.train.targets, again.train.targets)
    assert not torch.equal(first.val.inputs, other.val.inputs)
    # Train and validation partition the training file; the test split never moves.
    pooled = torch.cat([first.train.inputs, first.val.inputs]).flatten(1)
    pooled_other = torch.cat([other.train.inputs, other.val.inputs]).flatten(1)
    assert sorted(map(tuple, pooled.tolist())) == sorted(map(tuple, pooled_other.tolist()))
    assert torch.equal(first.test.inputs, other.test.inputs)


@pytest.mark.parametrize("name", ["mnist-cnn", "cifar10-cnn", "imdb-lstm", "voc-unet"])
def test_the_runner_trains_real_tasks_with_a_library_optimizer(name, data_dir):
    config = RunConfig(task=name, optimizer="adam_hd", max_steps=3, epochs=None, batch_size=4, log_every=1)
    result = train(config, data_dir=data_dir)
    assert result.status == "done", result.reason
    assert result.steps == 3
    metric = get_task(name).target_metric
    assert math.isfinite(result.final[f"test_{metric}"]) and math.isfinite(result.final["test_loss"])
