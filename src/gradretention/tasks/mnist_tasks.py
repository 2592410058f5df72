"""MNIST tasks: logistic regression, the hypergradient paper's MLP, and a small CNN.

Data: the four IDX files (``<data_dir>/mnist/``, plain or ``.gz``), else a Hugging Face
``mnist`` folder (``image``, ``label`` columns), else ``--download``. The 60 000 training
images are split per data seed into 55 000 train / 5 000 validation; the 10 000 ``t10k``
images are the test split. Pixels are scaled to [0, 1] and standardised with the usual
MNIST constants (mean 0.1307, std 0.3081), as in PyTorch's MNIST example and the
hypergradient paper's code.

References:
    Baydin et al., "Online Learning Rate Adaptation with Hypergradient Descent", ICLR 2018
    (logistic regression and the 784-1000-1000-10 MLP).
"""

from __future__ import annotations

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


def mnist_from_files(root: Path) -> Payload:
    """Decoded ``uint8`` images and ``int64`` labels of both IDX splits."""
    from gradretention.tasks.readers import read_mnist

    payload: Payload = {}
    for split in ("train", "test"):
        images, labels = read_mnist(root, split)
        payload[f"{split}_images"] = torch.from_numpy(images)
        payload[f"{split}_labels"] = torch.from_numpy(labels)
    return payload


def mnist_from_hf(dataset_dict: Any) -> Payload:
    """The same payload from a Hugging Face ``mnist`` DatasetDict (``image``, ``label``)."""
    from gradretention.tasks.readers import split_columns

    payload: Payload = {}
    for split in ("train", "test"):
        columns = split_columns(dataset_dict, split, ["image", "label"])
        where = f"Hugging Face mnist, split {split!r}"
        payload[f"{split}_images"] = torch.from_numpy(hf_images(columns["image"], "L", (28, 28), where))
        payload[f"{split}_labels"] = torch.from_numpy(checked_labels(columns["label"], NUM_CLASSES, where))
    return payload


def standardise_images(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``uint8 (N, C, H, W)`` -> float32 ``(x / 255 - mean) / std`` per channel."""
    shape = (1, len(mean), 1, 1)
    scaled = images.to(torch.float32).div_(255.0)
    return scaled.sub_(torch.tensor(mean).view(shape)).div_(torch.tensor(std).view(shape))


def load_mnist(data_seed: int, data_dir: Path | None = None) -> TaskData:
    """Train 55 000 / val 5 000 / test 10 000 images ``(N, 1, 28, 28)``, standardised.

    Raises:
        FileNotFoundError: no MNIST under the data directory (the message says what to put where).
        DatasetFormatError: the files are there but malformed.
    """
    seed = check_data_seed(data_seed)
    payload, source = load_cached(DATASET, data_dir, RECIPE, mnist_from_files, mnist_from_hf)
    train_index, val_index = carve_validation(len(payload["train_labels"]), VAL_FRACTION, seed)
    images, labels = payload["train_images"].unsqueeze(1), payload["train_labels"]

    def part(index: torch.Tensor) -> Split:
        # Index the uint8 images first: only the selected rows become float32.
        return Split(standardise_images(images[index], MEAN, STD), labels[index])

    return TaskData(
        train=part(train_index),
        val=part(val_index),
        test=Split(standardise_images(payload["test_images"].unsqueeze(1), MEAN, STD), payload["test_labels"].clone()),
        num_classes=NUM_CLASSES,
        info={
            "source": f"{source.kind}: {source.root}",
            "input_shape": (1, 28, 28),
            "normalization": {"mean": MEAN, "std": STD},
            "data_seed": seed,
        },
    )


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


_COMMON: dict[str, Any] = {
    "load": MemoisedLoad(load_mnist),
    "metrics": ("accuracy", "f1"),
    "target_metric": "accuracy",
    "default_lr": 1e-3,
    "needs_download": True,
}

MNIST_LOGREG = Task(
    name="mnist-logreg",
    description="MNIST (IDX files / HF); multinomial logistic regression 784-10",
    build_model=build_logreg,
    target_value=0.92,
    default_epochs=20,
    default_batch_size=128,
    **_COMMON,
)

MNIST_MLP = Task(
    name="mnist-mlp",
    description="MNIST (IDX files / HF); MLP 784-1000-1000-10 (hypergradient paper)",
    build_model=build_mlp,
    target_value=0.98,
    default_epochs=20,
    default_batch_size=128,
    **_COMMON,
)

MNIST_CNN = Task(
    name="mnist-cnn",
    description="MNIST (IDX files / HF); CNN 2 conv + 2 fc, dropout 0.5",
    build_model=build_cnn,
    target_value=0.99,
    default_epochs=10,
    default_batch_size=64,
    **_COMMON,
)

TASKS: tuple[Task, ...] = (MNIST_LOGREG, MNIST_MLP, MNIST_CNN)
TASK_DATASETS: dict[str, str] = {task.name: DATASET for task in TASKS}
