"""The lecture's spiral, network, decay and optimizers, each against a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradretention.bench.results import RunConfig
from gradretention.bench.runner import train
from gradretention.bench.suites import suite_configs
from gradretention.optim import create_optimizer
from gradretention.tasks.registry import get_task
from gradretention.tasks.spiral_nnfs import build_lecture_model, load_spiral_nnfs, nnfs_spiral_points

from .lecture_numpy import LectureOptimizer, gradients


def test_spiral_points_follow_the_nnfs_formula_on_a_fixed_seed():
    x, y = nnfs_spiral_points(5, 3, np.random.RandomState(7))
    normals = np.random.RandomState(7).randn(15)  # drawn class after class, 5 each
    for k in range(3):
        for i in range(5):
            r = i / 4
            t = 4 * k + 4 * i / 4 + 0.2 * float(np.float32(normals[5 * k + i]))
            assert y[5 * k + i] == k
            assert x[5 * k + i, 0] == pytest.approx(r * math.sin(2.5 * t), abs=1e-6)
            assert x[5 * k + i, 1] == pytest.approx(r * math.cos(2.5 * t), abs=1e-6)
    assert x.dtype == np.float32 and x[0].tolist() == [0.0, 0.0]  # radius 0 at each arm's start


def test_the_task_reports_on_the_points_it_trains_on():
    data = load_spiral_nnfs(0)
    assert data.train is data.val is data.test
    assert len(data.train) == 300 and torch.bincount(data.train.targets).tolist() == [100, 100, 100]
    task = get_task("spiral-nnfs")
    assert (task.default_epochs, task.default_batch_size, task.default_lr) == (10_000, 0, 1.0)


def test_the_lecture_init_is_a_hundredth_of_a_normal_with_zero_biases():
    torch.manual_seed(3)
    model = build_lecture_model(3)
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    biases = [m.bias for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(w.shape) for w in weights] == [(64, 2), (3, 64)]
    assert all(float(b.detach().abs().max()) == 0.0 for b in biases)
    pooled = torch.cat([w.detach().flatten() for w in weights])
    # 320 draws of 0.01 * N(0, 1): the std within ±20 % and the mean within 4 standard errors of 0.
    assert 0.008 < float(pooled.std()) < 0.012 and abs(float(pooled.mean())) < 4 * 0.01 / math.sqrt(320)
    # torch's default (Kaiming-uniform) would give the first layer a std near 1/sqrt(3 * 2) ≈ 0.41.
    torch.manual_seed(3)
    again = [m.weight for m in build_lecture_model(3).modules() if isinstance(m, torch.nn.Linear)]
    assert all(torch.equal(a, b) for a, b in zip(weights, again))


def test_the_runner_decays_the_lr_as_the_lecture_does():
    # lr_t = lr / (1 + decay * t), t = updates already made: the first update uses lr itself.
    config = RunConfig(task="spiral-nnfs", optimizer="sgd[lr=1]", epochs=None, max_steps=4, batch_size=0,
                       log_every=1, extra=(("lr_decay", 0.25),))  # fmt: skip
    result = train(config)
    logged = {p.step: p.value for p in result.curves if p.split == "opt" and p.name == "lr"}
    # After s updates the group's lr is the one update s + 1 will use: 1 / (1 + 0.25 s).
    assert logged == pytest.approx({1: 1 / 1.25, 2: 1 / 1.5, 3: 1 / 1.75, 4: 1 / 2.0}, rel=1e-12)


def _lecture_start() -> tuple[torch.nn.Module, list[np.ndarray], np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    model = build_lecture_model(3).double()
    w1, b1, w2, b2 = (p.detach().numpy().copy() for p in model.parameters())
    x, y = nnfs_spiral_points(100, 3, np.random.RandomState(0))
    return model, [w1.T.copy(), b1, w2.T.copy(), b2], x.astype(np.float64), y


@pytest.mark.parametrize(
    ("spec", "lecture"),
    [
        ("adagrad[lr=1,lr_decay=0.1,eps=1e-07]", LectureOptimizer("adagrad", lr=1.0, decay=0.1, eps=1e-7)),
        ("momentum[lr=1,momentum=0.9]", LectureOptimizer("sgd", lr=1.0, momentum=0.9)),
    ],
)
def test_our_optimizers_follow_the_lecture_code_step_for_step(spec, lecture):
    model, params, x, y = _lecture_start()
    optimizer = create_optimizer(spec, model.parameters())
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(25):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        lecture_loss, grads = gradients(params, x, y)
        lecture.step(params, grads)
        assert float(loss.detach()) == pytest.approx(lecture_loss, rel=1e-10)
    ours = [p.detach().numpy() for p in model.parameters()]
    np.testing.assert_allclose(ours[0], params[0].T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours[2], params[2].T, rtol=1e-9, atol=1e-12)


def test_the_lecture_suite_runs_the_nnfs_spiral_with_the_lectures_settings():
    configs = suite_configs("adagrad-lecture", seeds=2)
    assert {c.task for c in configs} == {"spiral-nnfs"} and len(configs) == 6
    assert all(c.epochs == 10_000 and c.batch_size == 0 for c in configs)
    by_spec = {c.optimizer: dict(c.extra) for c in configs}
    assert by_spec["adagrad[eps=1e-07,lr=1,lr_decay=0.0001]"].get("lr_decay") is None
    assert by_spec["sgd[lr=1]"]["lr_decay"] == by_spec["momentum[lr=1,momentum=0.9]"]["lr_decay"] == 1e-3
    assert {c.task for c in suite_configs("adagrad-lecture-cs231n")} == {"spiral"}  # the earlier form, kept
