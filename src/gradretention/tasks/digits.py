"""Handwritten digits: scikit-learn's bundled 8x8 images (UCI optical digits test set).

1,797 real images of the digits 0-9, 16 grey levels each, shipped inside scikit-learn
so nothing is downloaded. Per data seed they are split 60/20/20 by class and each of the
64 pixels is standardized with the train split's mean and std. Three models share the
same splits: logistic regression, an MLP and a small CNN.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from torch import nn

from gradretention.tasks.base import Split, Task, TaskData
from gradretention.tasks.models.small import MLP, DigitsCNN, LogisticRegression
from gradretention.tasks.splits import check_data_seed, make_split, standardize, stratified_split

NUM_CLASSES = 10
PIXELS = 64  # 8 x 8
FRACTIONS = (0.6, 0.2, 0.2)  # train / val / test


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    # Imported here so that listing tasks does not pay for importing scikit-learn.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64)


@lru_cache(maxsize=16)
def load_digits_flat(data_seed: int, data_dir: Path | None = None) -> TaskData:
    """Splits with ``(n, 64)`` inputs (``data_dir`` is unused: the data ship with scikit-learn).

    Cached per seed and shared between callers: treat the tensors as read-only.
    """
    seed = check_data_seed(data_seed)
    images, labels = _digits_arrays()
    train, val, test = stratified_split(labels, FRACTIONS, seed)
    x_train, x_val, x_test = standardize(images[train], images[val], images[test])
    return TaskData(
        train=make_split(x_train, labels[train]),
        val=make_split(x_val, labels[val]),
        test=make_split(x_test, labels[test]),
        num_classes=NUM_CLASSES,
        info={"source": "sklearn.datasets.load_digits", "input_shape": (PIXELS,), "data_seed": seed},
    )


@lru_cache(maxsize=16)
def load_digits_images(data_seed: int, data_dir: Path | None = None) -> TaskData:
    """The same splits with ``(n, 1, 8, 8)`` image inputs, for the CNN."""
    flat = load_digits_flat(data_seed)
    splits = [flat.train, flat.val, flat.test]
    # Views of the flat tensors: the image task costs no extra memory.
    images = [Split(split.inputs.view(-1, 1, 8, 8), split.targets) for split in splits]
    info = {**flat.info, "input_shape": (1, 8, 8)}
    return TaskData(*images, num_classes=flat.num_classes, info=info)


def build_logreg(num_classes: int) -> nn.Module:
    """Multinomial logistic regression on the 64 pixels."""
    return LogisticRegression(PIXELS, num_classes)


def build_mlp(num_classes: int) -> nn.Module:
    """64 -> 128 -> ReLU -> num_classes."""
    return MLP(PIXELS, (128,), num_classes)


def build_cnn(num_classes: int) -> nn.Module:
    """Two 3x3 convolutions (16, 32 channels), max-pool, 512 -> 64 -> num_classes."""
    return DigitsCNN(num_classes)


_COMMON = {"metrics": ("accuracy", "f1"), "target_metric": "accuracy", "default_batch_size": 64}

DIGITS_LOGREG = Task(
    name="digits-logreg",
    description="sklearn 8x8 digits (1,797 images); logistic regression",
    load=load_digits_flat,
    build_model=build_logreg,
    target_value=0.93,
    default_epochs=10,
    default_lr=0.01,
    **_COMMON,
)

DIGITS_MLP = Task(
    name="digits-mlp",
    description="sklearn 8x8 digits (1,797 images); MLP 64-128-10",
    load=load_digits_flat,
    build_model=build_mlp,
    target_value=0.95,
    default_epochs=10,
    default_lr=0.003,
    **_COMMON,
)

DIGITS_CNN = Task(
    name="digits-cnn",
    description="sklearn 8x8 digits (1,797 images); CNN 2 conv + 2 fc",
    load=load_digits_images,
    build_model=build_cnn,
    target_value=0.95,
    default_epochs=6,
    default_lr=0.003,
    **_COMMON,
)

TASKS: tuple[Task, ...] = (DIGITS_LOGREG, DIGITS_MLP, DIGITS_CNN)
