"""The embedded tasks (spiral, digits, MNIST-1D), their splits, models, metrics and registry."""

from __future__ import annotations

import math
import random
import socket

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from gradretention.tasks.base import Task, TaskData, classification_metrics
from gradretention.tasks.models.small import Conv1dNet
from gradretention.tasks.registry import TASKS, available_tasks, get_task, register_task
from gradretention.tasks.spiral import spiral_points
from gradretention.tasks.splits import check_data_seed, holdout_split, standardize, stratified_split

# (train, val, test) sizes, the shape of one input and the class count, per task. Digits:
# per class round(0.2 * count) goes to val and to test, 359 each of the 1,797 images.
EXPECTED = {
    "spiral": ((180, 60, 60), (2,), 3),
    "digits-logreg": ((1079, 359, 359), (64,), 10),
    "digits-mlp": ((1079, 359, 359), (64,), 10),
    "digits-cnn": ((1079, 359, 359), (1, 8, 8), 10),
    "mnist1d-mlp": ((3500, 500, 1000), (40,), 10),
    "mnist1d-cnn": ((3500, 500, 1000), (40,), 10),
}


def _clear_load_caches() -> None:
    for task in TASKS.values():
        task.load.cache_clear()


def _rows(tensor: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(row) for row in tensor.flatten(1).tolist()}


def test_registry_lists_every_embedded_task_sorted():
    assert set(EXPECTED) <= set(available_tasks())
    assert available_tasks() == sorted(available_tasks())


def test_unknown_task_suggests_the_closest_and_lists_all():
    with pytest.raises(ValueError, match="spirl") as error:
        get_task("spirl")
    message = str(error.value)
    assert "Did you mean 'spiral'" in message
    for name in available_tasks():
        assert name in message


def test_registering_a_second_task_under_a_taken_name_fails():
    clash = Task(name="spiral", description="clash", load=lambda seed, path: None, build_model=lambda n: None)
    with pytest.raises(ValueError, match="'spiral' is already registered"):
        register_task(clash)
    assert get_task("spiral") is not clash


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_task_loads_with_documented_shapes_dtypes_and_classes(name):
    task = get_task(name)
    data = task.load(0, None)
    sizes, input_shape, num_classes = EXPECTED[name]
    assert isinstance(data, TaskData)
    assert data.num_classes == num_classes
    for split, size in zip((data.train, data.val, data.test), sizes):
        assert len(split) == size
        assert split.inputs.shape == (size, *input_shape)
        assert split.inputs.dtype == torch.float32 and split.targets.dtype == torch.int64
        assert split.inputs.device.type == "cpu"
        assert torch.isfinite(split.inputs).all()
        # Every class occurs in every split (stratified, or large enough to be sure).
        assert torch.equal(split.targets.unique(), torch.arange(num_classes))
    assert 0 < task.target_value <= 1 and task.target_metric in task.metrics
    assert task.default_epochs >= 1 and task.default_batch_size >= 1 and task.default_lr > 0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_splits_share_no_examples(name):
    data = get_task(name).load(0, None)
    train, val, test = (_rows(split.inputs) for split in (data.train, data.val, data.test))
    # The spiral's three arms all start at the origin (radius 0): the one shared point.
    allowed = {(0.0, 0.0)} if name == "spiral" else set()
    assert (train & val) <= allowed and (train & test) <= allowed and (val & test) <= allowed


def _refuse_network(*args, **kwargs):
    raise AssertionError("a task tried to open a network connection")


def test_same_data_seed_regenerates_identical_tensors_offline_and_other_seeds_differ(monkeypatch):
    first = {name: get_task(name).load(0, None) for name in EXPECTED}
    other = {name: get_task(name).load(1, None) for name in EXPECTED}
    _clear_load_caches()
    # Regenerating from scratch must not touch the network (mnist1d's get_dataset would).
    monkeypatch.setattr(socket.socket, "connect", _refuse_network)
    monkeypatch.setattr(socket, "create_connection", _refuse_network)
    random.seed(123)
    np.random.seed(123)
    regenerated = {name: get_task(name).load(0, None) for name in EXPECTED}
    # mnist1d seeds the global RNGs while generating; loading must put them back.
    assert random.random() == random.Random(123).random()
    assert np.random.random() == np.random.RandomState(123).random_sample()
    for name in EXPECTED:
        again = regenerated[name]
        assert again is not first[name]
        for a, b, c in zip(
            (first[name].train, first[name].val, first[name].test),
            (again.train, again.val, again.test),
            (other[name].train, other[name].val, other[name].test),
        ):
            assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
            assert not torch.equal(a.inputs, c.inputs)


def test_loading_is_cached_per_data_seed():
    task = get_task("digits-mlp")
    assert task.load(2, None) is task.load(2, None)


def test_mnist1d_is_centred_and_scaled_over_all_its_signals():
    data = get_task("mnist1d-mlp").load(0, None)
    # make_dataset centres and scales the whole set (train and test together).
    everything = torch.cat([data.train.inputs, data.val.inputs, data.test.inputs]).double()
    assert abs(float(everything.mean())) < 1e-6 and abs(float(everything.std(unbiased=False)) - 1) < 1e-6


def test_digits_are_standardized_with_train_statistics_only():
    data = get_task("digits-mlp").load(0, None)
    train = data.train.inputs.double()
    varying = train.std(dim=0, unbiased=False) > 0
    assert torch.allclose(train.mean(dim=0), torch.zeros(64, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(train.std(dim=0, unbiased=False)[varying], torch.ones(int(varying.sum()), dtype=torch.float64))
    # Pixels blank in every train image stay exactly 0 rather than dividing by zero.
    assert torch.equal(train[:, ~varying], torch.zeros_like(train[:, ~varying]))
    # The image task views the very same numbers.
    images = get_task("digits-cnn").load(0, None)
    assert torch.equal(images.test.inputs.flatten(1), data.test.inputs)


def test_spiral_points_follow_the_formula_without_noise():
    points, labels = spiral_points(5, 3, seed=0, noise=0.0)
    assert points.shape == (15, 2) and labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    for k in range(3):
        assert np.allclose(points[5 * k], [0.0, 0.0])  # radius 0
        end = 4.0 * (k + 1)  # last point: radius 1 at angle 4(k + 1)
        assert np.allclose(points[5 * k + 4], [math.sin(end), math.cos(end)])
    # Class 1, point 2: radius linspace(0, 1, 5)[2] = 0.5 at angle linspace(4, 8, 5)[2] = 6.
    assert np.allclose(points[7], [0.5 * math.sin(6.0), 0.5 * math.cos(6.0)])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_gives_logits_and_a_few_adam_steps_lower_the_loss(name):
    task = get_task(name)
    data = task.load(0, None)
    torch.manual_seed(0)
    model = task.build_model(data.num_classes)
    inputs, targets = data.train.batch(torch.arange(64))
    assert model(inputs).shape == (64, data.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=task.default_lr)
    with torch.no_grad():
        before = float(task.batch_loss(model, inputs, targets))
    for _ in range(15):
        optimizer.zero_grad()
        task.batch_loss(model, inputs, targets).backward()
        optimizer.step()
    with torch.no_grad():
        after = float(task.batch_loss(model, inputs, targets))
    assert after < 0.8 * before


@pytest.mark.parametrize("name", ["spiral", "digits-cnn", "mnist1d-cnn"])
def test_evaluate_batches_to_the_same_numbers_as_one_pass(name):
    task = get_task(name)
    data = task.load(0, None)
    torch.manual_seed(0)
    model = task.build_model(data.num_classes)
    result = task.evaluate(model, data.val, batch_size=37)
    with torch.no_grad():
        logits = model(data.val.inputs)
    assert set(result) == {"loss", "accuracy", "f1"}
    assert result["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, data.val.targets)), rel=1e-5)
    predicted = logits.argmax(dim=1).numpy()
    assert result["accuracy"] == pytest.approx(accuracy_score(data.val.targets.numpy(), predicted))
    assert 0 <= result["f1"] <= 1 and 0 <= result["accuracy"] <= 1


def test_evaluate_loss_is_the_batch_means_times_sizes_summed_in_float64():
    task = get_task("digits-mlp")
    data = task.load(0, None)
    torch.manual_seed(0)
    model = task.build_model(data.num_classes)
    n, size = len(data.val), 100  # 359 examples: batches of 100, 100, 100, 59
    total = 0.0
    with torch.no_grad():
        for start in range(0, n, size):
            inputs, targets = data.val.inputs[start : start + size], data.val.targets[start : start + size]
            total += float(torch.nn.functional.cross_entropy(model(inputs), targets)) * len(targets)
    model.train()
    result = task.evaluate(model, data.val, batch_size=size)
    assert result["loss"] == total / n  # exactly: the same float64 sum, in the same order
    assert model.training  # put back as it was


def test_split_rows_are_views_of_the_examples_batch_would_copy():
    split = get_task("spiral").load(0, None).train
    inputs, targets = split.rows(10, 20)
    copied_inputs, copied_targets = split.batch(torch.arange(10, 20))
    assert torch.equal(inputs, copied_inputs) and torch.equal(targets, copied_targets)
    assert inputs.data_ptr() == split.inputs[10].data_ptr()  # no copy


def test_classification_metrics_of_an_empty_split_are_zero():
    assert classification_metrics([torch.zeros(0, 3)], [torch.zeros(0, dtype=torch.long)]) == {"accuracy": 0.0, "f1": 0.0}


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_equal_sklearn_on_random_labels(seed):
    generator = torch.Generator().manual_seed(seed)
    num_classes = 7
    logits = torch.randn(300, num_classes, generator=generator)
    # Labels from 0..5 only: class 6 can occur in predictions but never in truth.
    labels = torch.randint(0, num_classes - 1, (300,), generator=generator)
    result = classification_metrics(list(logits.split(64)), list(labels.split(64)))
    predicted = logits.argmax(dim=1).numpy()
    assert result["accuracy"] == pytest.approx(accuracy_score(labels.numpy(), predicted))
    expected_f1 = f1_score(labels.numpy(), predicted, average="macro", zero_division=0)
    assert result["f1"] == pytest.approx(expected_f1)


def test_stratified_split_is_disjoint_covering_and_keeps_class_shares():
    labels = np.repeat(np.arange(4), [50, 30, 20, 10])
    train, val, test = stratified_split(labels, (0.6, 0.2, 0.2), seed=3)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(110))
    for label, count in zip(range(4), [50, 30, 20, 10]):
        assert np.sum(labels[val] == label) == round(0.2 * count)
        assert np.sum(labels[test] == label) == round(0.2 * count)
    again = stratified_split(labels, (0.6, 0.2, 0.2), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    assert not np.array_equal(train, stratified_split(labels, (0.6, 0.2, 0.2), seed=4)[0])


def test_holdout_split_and_standardize_by_hand():
    kept, held_out = holdout_split(10, 3, seed=0)
    assert len(held_out) == 3 and sorted(np.concatenate([kept, held_out]).tolist()) == list(range(10))
    train = np.array([[1.0, 5.0], [3.0, 5.0]])  # mean (2, 5), std (1, 0 -> 1)
    scaled_train, scaled_other = standardize(train, np.array([[4.0, 7.0]]))
    assert np.array_equal(scaled_train, [[-1.0, 0.0], [1.0, 0.0]])
    assert np.array_equal(scaled_other, [[2.0, 2.0]])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_data_seed(-1), r"data_seed must be an int in \[0, 2\*\*32\), got -1"),
        (lambda: check_data_seed(1.5), "got 1.5"),
        (lambda: check_data_seed(True), "got True"),
        (lambda: stratified_split(np.zeros(4), (0.5, 0.5, 0.0), 0), r"got \(0.5, 0.5, 0.0\)"),
        (lambda: holdout_split(10, 10, 0), r"num_holdout must be in \(0, 10\), got 10"),
    ],
)
def test_bad_arguments_name_the_bad_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_mnist1d_cnn_matches_the_papers_layout():
    model = Conv1dNet(10)
    assert model.readout.in_features == 125  # 25 channels x 5 positions
    assert sum(p.numel() for p in model.parameters()) == 5210
