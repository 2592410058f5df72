"""MNIST and Fashion-MNIST tasks: logistic regression, the hypergradient paper's MLP, a small CNN.

Both datasets come as the same four IDX files (plain or ``.gz``), read from
``<data_dir>/mnist/`` or ``<data_dir>/fashion-mnist/`` (Fashion-MNIST also from Debian's
``/usr/share/datasets/fashion-mnist/``, where ``apt-get install dataset-fashion-mnist``
puts it), else a Hugging Face folder (``image``, ``label`` columns), else ``--download``.
The 60 000 training images are split per data seed into 55 000 train / 5 000 validation;
the 10 000 ``t10k`` images are the test split. Pixels are scaled to [0, 1] and
standardised with each dataset's constants: MNIST's usual 0.1307 / 0.3081 (PyTorch's MNIST
example and the hypergradient paper's code), Fashion-MNIST's 0.2860 / 0.3530 (the mean and
std of its 60 000 training images).

Fashion-MNIST (Xiao et al., 2017) is a drop-in replacement for MNIST: ten kinds of clothing
instead of digits, harder and less saturated. Its published scikit-learn baselines are about
84 % for logistic regression and 87-88 % for an MLP; the targets below follow them.

References:
    Baydin et al., "Online Learning Rate Adaptation with Hypergradient Descent", ICLR 2018
    (logistic regression and the 784-1000-1000-10 MLP).
    Xiao, Rasul and Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking
    Machine Learning Algorithms", arXiv:1708.07747, 2017.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradretention.tasks.base import Split, Task, TaskData
from gradretention.tasks.datacache import (
    MemoisedLoad,
    Payload,
    carve_validation,
    checked_labels,
    hf_images,
    load_cached,
)
from gradretention.tasks.splits import check_data_seed

DATASET = "mnist"
NUM_CLASSES = 10
MEAN, STD = (0.1307,), (0.3081,)
VAL_FRACTION = 5_000 / 60_000
RECIPE = "uint8-v1"


@dataclass(frozen=True)
class IdxImages:
    """A 28x28 grey-scale dataset in MNIST's IDX format and its standardisation constants."""

    dataset: str  # the name in readers.locate.DATASETS
    mean: tuple[float, ...]
    std: tuple[float, ...]


MNIST = IdxImages(DATASET, MEAN, STD)
FASHION_MNIST = IdxImages("fashion-mnist", (0.2860,), (0.3530,))


def mnist_from_files(root: Path) -> Payload:
    """Decoded ``uint8`` images and ``int64`` labels of both IDX splits."""
    from gradretention.tasks.readers import read_mnist

    payload: Payload = {}
    for split in ("train", "test"):
        images, labels = read_mnist(root, split)
        payload[f"{split}_images"] = torch.from_numpy(images)
        payload[f"{split}_labels"] = torch.from_numpy(labels)
    return payload


def mnist_from_hf(dataset_dict: Any, name: str = DATASET) -> Payload:
    """The same payload from a Hugging Face ``mnist`` (or ``fashion_mnist``) DatasetDict (``image``, ``label``)."""
    from gradretention.tasks.readers import split_columns

    payload: Payload = {}
    for split in ("train", "test"):
        columns = split_columns(dataset_dict, split, ["image", "label"])
        where = f"Hugging Face {name}, split {split!r}"
        payload[f"{split}_images"] = torch.from_numpy(hf_images(columns["image"], "L", (28, 28), where))
        payload[f"{split}_labels"] = torch.from_numpy(checked_labels(columns["label"], NUM_CLASSES, where))
    return payload


def standardise_images(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``uint8 (N, C, H, W)`` -> float32 ``(x / 255 - mean) / std`` per channel."""
    shape = (1, len(mean), 1, 1)
    scaled = images.to(torch.float32).div_(255.0)
    return scaled.sub_(torch.tensor(mean).view(shape)).div_(torch.tensor(std).view(shape))


def load_idx_images(images_set: IdxImages, data_seed: int, data_dir: Path | None = None) -> TaskData:
    """Train 55 000 / val 5 000 / test 10 000 images ``(N, 1, 28, 28)``, standardised.

    Raises:
        FileNotFoundError: the dataset is not under the data directory (nor, for
            Fashion-MNIST, where Debian's package puts it); the message says what to put where.
        DatasetFormatError: the files are there but malformed.
    """
    seed = check_data_seed(data_seed)
    from_hf = partial(mnist_from_hf, name=images_set.dataset)
    payload, source = load_cached(images_set.dataset, data_dir, RECIPE, mnist_from_files, from_hf)
    train_index, val_index = carve_validation(len(payload["train_labels"]), VAL_FRACTION, seed)
    images, labels = payload["train_images"].unsqueeze(1), payload["train_labels"]
    mean, std = images_set.mean, images_set.std

    def part(index: torch.Tensor) -> Split:
        # Index the uint8 images first: only the selected rows become float32.
        return Split(standardise_images(images[index], mean, std), labels[index])

    return TaskData(
        train=part(train_index),
        val=part(val_index),
        test=Split(standardise_images(payload["test_images"].unsqueeze(1), mean, std), payload["test_labels"].clone()),
        num_classes=NUM_CLASSES,
        info={
            "source": f"{source.kind}: {source.root}",
            "input_shape": (1, 28, 28),
            "normalization": {"mean": mean, "std": std},
            "data_seed": seed,
        },
    )


def load_mnist(data_seed: int, data_dir: Path | None = None) -> TaskData:
    """MNIST's splits (see :func:`load_idx_images`)."""
    return load_idx_images(MNIST, data_seed, data_dir)


def load_fashion_mnist(data_seed: int, data_dir: Path | None = None) -> TaskData:
    """Fashion-MNIST's splits (see :func:`load_idx_images`)."""
    return load_idx_images(FASHION_MNIST, data_seed, data_dir)


def build_logreg(num_classes: int) -> nn.Module:
    """784 -> num_classes, one linear layer."""
    from gradretention.tasks.models.mnist import MnistLogReg

    return MnistLogReg(num_classes)


def build_mlp(num_classes: int) -> nn.Module:
    """784-1000-1000-num_classes with ReLU (the hypergradient paper's MLP)."""
    from gradretention.tasks.models.mnist import MnistMLP

    return MnistMLP(num_classes)


def build_cnn(num_classes: int) -> nn.Module:
    """Two 3x3 convolutions (32, 64), max-pool, fc 9216-128-num_classes, dropout 0.25 / 0.5."""
    from gradretention.tasks.models.mnist import MnistCNN

    return MnistCNN(num_classes)


def idx_tasks(prefix: str, title: str, load: Any, targets: tuple[float, float, float]) -> tuple[Task, ...]:
    """The three models on one IDX dataset: ``<prefix>-logreg``, ``-mlp``, ``-cnn``, with their targets."""
    common: dict[str, Any] = {
        "load": MemoisedLoad(load),
        "metrics": ("accuracy", "f1"),
        "target_metric": "accuracy",
        "default_lr": 1e-3,
        "needs_download": True,
    }
    logreg, mlp, cnn = targets
    return (
        Task(name=f"{prefix}-logreg", description=f"{title}; multinomial logistic regression 784-10",
             build_model=build_logreg, target_value=logreg, default_epochs=20, default_batch_size=128, **common),
        Task(name=f"{prefix}-mlp", description=f"{title}; MLP 784-1000-1000-10 (hypergradient paper)",
             build_model=build_mlp, target_value=mlp, default_epochs=20, default_batch_size=128, **common),
        Task(name=f"{prefix}-cnn", description=f"{title}; CNN 2 conv + 2 fc, dropout 0.5",
             build_model=build_cnn, target_value=cnn, default_epochs=10, default_batch_size=64, **common),
    )  # fmt: skip


MNIST_LOGREG, MNIST_MLP, MNIST_CNN = idx_tasks("mnist", "MNIST (IDX files / HF)", load_mnist, (0.92, 0.98, 0.99))
FMNIST_LOGREG, FMNIST_MLP, FMNIST_CNN = idx_tasks(
    "fmnist", "Fashion-MNIST (IDX files / Debian dataset-fashion-mnist / HF)", load_fashion_mnist, (0.84, 0.88, 0.91)
)

TASKS: tuple[Task, ...] = (MNIST_LOGREG, MNIST_MLP, MNIST_CNN, FMNIST_LOGREG, FMNIST_MLP, FMNIST_CNN)
TASK_DATASETS: dict[str, str] = {
    **{task.name: DATASET for task in TASKS[:3]},
    **{task.name: FASHION_MNIST.dataset for task in TASKS[3:]},
}
