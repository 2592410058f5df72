"""The three-arm spiral: the classic toy problem a linear model cannot solve.

Point ``i`` of class ``k`` (``N`` points per class) sits at radius ``r_i`` and angle
``t_i``::

    r_i = linspace(0, 1, N)[i]
    t_i = linspace(4k, 4(k + 1), N)[i] + 0.2 * randn()
    x_i = (r_i sin t_i, r_i cos t_i)

as in CS231n's "Putting it together" notes (nnfs.io's ``spiral_data``, the ``spiral-nnfs``
task, is the same with the angle scaled by 2.5). The noise comes from the data seed, so each seed is its own
spiral; the 60/20/20 split is stratified and seeded too.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from torch import nn

from gradretention.tasks.base import Task, TaskData
from gradretention.tasks.models.small import MLP
from gradretention.tasks.splits import check_data_seed, make_split, stratified_split

POINTS_PER_CLASS = 100
NUM_CLASSES = 3
ANGLE_NOISE = 0.2  # std of the angle jitter, radians
FRACTIONS = (0.6, 0.2, 0.2)  # train / val / test


def spiral_points(
    points_per_class: int, num_classes: int, seed: int, noise: float = ANGLE_NOISE
) -> tuple[np.ndarray, np.ndarray]:
    """Generate the spiral: ``(points_per_class * num_classes, 2)`` points and their labels.

    Example:
        >>> x, y = spiral_points(100, 3, seed=0)
        >>> x.shape, y.shape, int(y.max())
        ((300, 2), (300,), 2)
    """
    rng = np.random.default_rng(seed)
    points, labels = [], []
    for k in range(num_classes):
        radius = np.linspace(0.0, 1.0, points_per_class)
        angle = np.linspace(4.0 * k, 4.0 * (k + 1), points_per_class) + noise * rng.standard_normal(points_per_class)
        points.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        labels.append(np.full(points_per_class, k, dtype=np.int64))
    return np.concatenate(points), np.concatenate(labels)


@lru_cache(maxsize=16)
def load_spiral(data_seed: int, data_dir: Path | None = None) -> TaskData:
    """The spiral's fixed splits for one data seed (``data_dir`` is unused: nothing to read).

    Cached per seed and shared between callers: treat the tensors as read-only.
    """
    seed = check_data_seed(data_seed)
    points, labels = spiral_points(POINTS_PER_CLASS, NUM_CLASSES, seed)
    train, val, test = stratified_split(labels, FRACTIONS, seed)
    # The points already lie in [-1, 1]^2, so no standardization is needed.
    return TaskData(
        train=make_split(points[train], labels[train]),
        val=make_split(points[val], labels[val]),
        test=make_split(points[test], labels[test]),
        num_classes=NUM_CLASSES,
        info={"source": "generated (CS231n spiral)", "input_shape": (2,), "data_seed": seed},
    )


def build_spiral_model(num_classes: int) -> nn.Module:
    """2 -> 64 -> ReLU -> num_classes."""
    return MLP(2, (64,), num_classes)


SPIRAL = Task(
    name="spiral",
    description="3-arm spiral, 300 2-D points; MLP 2-64-3",
    load=load_spiral,
    build_model=build_spiral_model,
    target_metric="accuracy",
    target_value=0.9,
    metrics=("accuracy", "f1"),
    default_epochs=50,
    default_batch_size=32,
    default_lr=0.02,
)

TASKS: tuple[Task, ...] = (SPIRAL,)
