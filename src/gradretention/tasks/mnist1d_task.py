"""MNIST-1D: ten 1-D digit templates, padded, scaled, shifted, sheared and noised.

The ``mnist1d`` package generates the data set procedurally; we call its
``make_dataset`` with the package's default arguments (5,000 signals of length 40,
4,000 train / 1,000 test) and ``seed`` set to the data seed. That path is pure numpy and
scipy; we never call ``get_dataset``, which would download a pickle or write one to the
working directory. Its train part is split again into train and validation; its test
part stays the test split.

References:
    Greydanus & Kobak, "Scaling Down Deep Learning with MNIST-1D", ICML 2024.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
from torch import nn

from gradretention.tasks.base import Task, TaskData
from gradretention.tasks.models.small import MLP, Conv1dNet
from gradretention.tasks.splits import check_data_seed, holdout_split, make_split

NUM_CLASSES = 10
SIGNAL_LENGTH = 40
NUM_VALIDATION = 500  # held out of the package's 4,000 train signals


@contextmanager
def _global_rng_preserved() -> Iterator[None]:
    # make_dataset seeds Python's and numpy's *global* RNGs; put them back afterwards so
    # loading a task never changes another component's random stream.
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def generate_mnist1d(seed: int) -> dict[str, np.ndarray]:
    """The package's data set for ``seed``: keys ``x``, ``y`` (train) and ``x_test``, ``y_test``."""
    # Imported here: mnist1d pulls in matplotlib and requests, which listing tasks need not pay for.
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    with _global_rng_preserved():
        data = make_dataset(args)
    return {key: data[key] for key in ("x", "y", "x_test", "y_test")}


@lru_cache(maxsize=16)
def load_mnist1d(data_seed: int, data_dir: Path | None = None) -> TaskData:
    """Train 3,500 / val 500 / test 1,000 signals of length 40 (``data_dir`` is unused).

    Cached per seed and shared between callers: treat the tensors as read-only.
    """
    seed = check_data_seed(data_seed)
    data = generate_mnist1d(seed)
    keep, held_out = holdout_split(len(data["y"]), NUM_VALIDATION, seed)
    # make_dataset already centres the whole set and scales it to unit std.
    return TaskData(
        train=make_split(data["x"][keep], data["y"][keep]),
        val=make_split(data["x"][held_out], data["y"][held_out]),
        test=make_split(data["x_test"], data["y_test"]),
        num_classes=NUM_CLASSES,
        info={"source": "mnist1d.data.make_dataset (generated)", "input_shape": (SIGNAL_LENGTH,), "data_seed": seed},
    )


def build_mlp(num_classes: int) -> nn.Module:
    """The paper's MLP: 40 -> 100 -> ReLU -> 100 -> ReLU -> num_classes."""
    return MLP(SIGNAL_LENGTH, (100, 100), num_classes)


def build_cnn(num_classes: int) -> nn.Module:
    """The paper's CNN: three strided 1-D convolutions with 25 channels, linear read-out."""
    return Conv1dNet(num_classes, channels=25, length=SIGNAL_LENGTH)


_COMMON = {"metrics": ("accuracy", "f1"), "target_metric": "accuracy", "default_batch_size": 100}

MNIST1D_MLP = Task(
    name="mnist1d-mlp",
    description="MNIST-1D (generated, 40-sample signals); MLP 40-100-100-10",
    load=load_mnist1d,
    build_model=build_mlp,
    target_value=0.55,
    default_epochs=10,
    default_lr=0.01,
    **_COMMON,
)

MNIST1D_CNN = Task(
    name="mnist1d-cnn",
    description="MNIST-1D (generated, 40-sample signals); 1-D CNN, 3 conv",
    load=load_mnist1d,
    build_model=build_cnn,
    target_value=0.8,
    default_epochs=10,
    default_lr=0.01,
    **_COMMON,
)

TASKS: tuple[Task, ...] = (MNIST1D_MLP, MNIST1D_CNN)
