"""The Adagrad lecture's spiral, as nnfs.io's ``spiral_data`` makes it, and the lecture's network.

Point ``i`` of class ``k`` (``N = 100`` points per class, 3 classes)::

    r_i = linspace(0, 1, N)[i]
    t_i = linspace(4k, 4(k + 1), N)[i] + 0.2 · z_i        z_i ~ N(0, 1)
    x_i = (r_i sin(2.5 t_i), r_i cos(2.5 t_i))

The 2.5 multiplies the noisy angle (noise included), so each arm turns 2.5 times further
than in CS231n's spiral (:mod:`gradretention.tasks.spiral`, kept as it is): harder. The
``z_i`` are drawn class after class from numpy's legacy ``RandomState(data_seed).randn`` and
cast to float32, as ``nnfs.init()`` (``np.random.seed(0)``, float32 ``randn``) then
``spiral_data(100, 3)`` does: data seed 0 gives the lecture's very 300 points.

**Train = validation = test.** The lecture trains on all 300 points and reports the
accuracy on those same points; so does this task: its three splits are the same 300
points, and its "test accuracy" is the lecture's training accuracy. It measures how well
an optimizer fits, not how well it generalises.

The network is the lecture's: dense 2 → 64, ReLU, dense 64 → 3, softmax cross-entropy;
weights ``0.01 · N(0, 1)`` and zero biases (nnfs's ``Layer_Dense``), drawn from torch's
generator (the runner seeds it with the run seed). Full batch, lr 1, 10 000 epochs are the
defaults, as in the lecture.

References:
    Kinsley & Kukieła, "Neural Networks from Scratch in Python" (nnfs.io), ch. 10, and its
    ``nnfs`` package (``nnfs.datasets.spiral_data``, after CS231n's case study).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gradretention.tasks.base import Task, TaskData
from gradretention.tasks.models.small import MLP
from gradretention.tasks.splits import check_data_seed, make_split

POINTS_PER_CLASS = 100
NUM_CLASSES = 3
ANGLE_NOISE = 0.2  # std of the angle jitter before the 2.5 factor, radians
TURNS = 2.5  # nnfs multiplies the angle by 2.5
INIT_SCALE = 0.01  # nnfs Layer_Dense: weights 0.01 * randn, biases 0


def nnfs_spiral_points(
    points_per_class: int, num_classes: int, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """nnfs.io's ``spiral_data``: float32 ``(points_per_class * num_classes, 2)`` points, int64 labels.

    Draws ``points_per_class`` normals per class from ``rng`` (class 0 first), as nnfs does.

    Example:
        >>> x, y = nnfs_spiral_points(100, 3, np.random.RandomState(0))
        >>> x.shape, x.dtype, y.tolist()[::100]
        ((300, 2), dtype('float32'), [0, 1, 2])
    """
    points, labels = [], []
    radius = np.linspace(0.0, 1.0, points_per_class)
    for k in range(num_classes):
        # float32 noise as nnfs.init() makes randn return; the sum is float64 as in nnfs.
        noise = rng.randn(points_per_class).astype(np.float32) * ANGLE_NOISE
        angle = np.linspace(4.0 * k, 4.0 * (k + 1), points_per_class) + noise
        points.append(np.stack([radius * np.sin(angle * TURNS), radius * np.cos(angle * TURNS)], axis=1))
        labels.append(np.full(points_per_class, k, dtype=np.int64))
    return np.concatenate(points).astype(np.float32), np.concatenate(labels)


@lru_cache(maxsize=16)
def load_spiral_nnfs(data_seed: int, data_dir: Path | None = None) -> TaskData:
    """The 300 points of one data seed as train, validation and test alike (``data_dir`` unused).

    Cached per seed and shared between callers: treat the tensors as read-only.
    """
    seed = check_data_seed(data_seed)
    points, labels = nnfs_spiral_points(POINTS_PER_CLASS, NUM_CLASSES, np.random.RandomState(seed))
    split = make_split(points, labels)
    return TaskData(
        train=split,
        val=split,
        test=split,
        num_classes=NUM_CLASSES,
        info={"source": "generated (nnfs.io spiral_data)", "input_shape": (2,), "data_seed": seed,
              "splits": "train = val = test: the same 300 points, as the lecture reports"},  # fmt: skip
    )


def build_lecture_model(num_classes: int) -> nn.Module:
    """2 → 64 → ReLU → ``num_classes``; weights 0.01 · N(0, 1) from torch's generator, biases 0."""
    model = MLP(2, (64,), num_classes)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, nn.Linear):
                layer.weight.normal_(0.0, 1.0).mul_(INIT_SCALE)
                layer.bias.zero_()
    return model


SPIRAL_NNFS = Task(
    name="spiral-nnfs",
    description="the Adagrad lecture's spiral (nnfs.io, 2.5 turns), 300 points = train = val = test; MLP 2-64-3",
    load=load_spiral_nnfs,
    build_model=build_lecture_model,
    target_metric="accuracy",
    target_value=0.9,
    metrics=("accuracy", "f1"),
    default_epochs=10_000,
    default_batch_size=0,
    default_lr=1.0,
    held_out=False,  # train = val = test, as the lecture reports: never in a tuned comparison
)

TASKS: tuple[Task, ...] = (SPIRAL_NNFS,)
