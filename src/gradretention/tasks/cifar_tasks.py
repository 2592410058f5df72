"""CIFAR-10 tasks: a small CNN, ResNet-18 and VGG-16 (batch norm), with flip + crop augmentation.

Data: ``<data_dir>/cifar-10-batches-py/`` (the official Python pickles, read by a safe
unpickler), else a Hugging Face ``cifar10`` folder (``img`` or ``image``, ``label``),
else ``--download``. The 50 000 training images are split per data seed into 45 000
train / 5 000 validation; ``test_batch`` is the test split. Pixels are scaled to [0, 1]
and standardised per channel with the training set's statistics.

Training batches are augmented on the device they live on (random horizontal flip, then
a random 32x32 crop of the 4-pixel zero-padded image) through :attr:`Task.augment`, with
the run's own generator. Padding happens after standardisation, so the border is the
mean colour rather than torchvision's black.

References:
    Baydin et al., ICLR 2018, trained VGG-16 on CIFAR-10 for the hypergradient paper.
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
from gradretention.tasks.mnist_tasks import standardise_images
from gradretention.tasks.models.cifar import augment_flip_crop
from gradretention.tasks.splits import check_data_seed

DATASET = "cifar10"
NUM_CLASSES = 10
# Per-channel statistics of the 50 000 training images (the widely used values).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
VAL_FRACTION = 5_000 / 50_000
RECIPE = "uint8-v1"
_HF_IMAGE_COLUMNS = ("img", "image")


def cifar_from_files(root: Path) -> Payload:
    """Decoded ``uint8 (N, 3, 32, 32)`` images and ``int64`` labels of both splits."""
    from gradretention.tasks.readers import read_cifar10

    payload: Payload = {}
    for split in ("train", "test"):
        images, labels = read_cifar10(root, split)
        payload[f"{split}_images"] = torch.from_numpy(images)
        payload[f"{split}_labels"] = torch.from_numpy(labels)
    return payload


def cifar_from_hf(dataset_dict: Any) -> Payload:
    """The same payload from a Hugging Face ``cifar10`` DatasetDict."""
    from gradretention.tasks.readers import split_columns

    payload: Payload = {}
    for split in ("train", "test"):
        names = dataset_dict[split].column_names if split in dataset_dict else []
        # uoft-cs/cifar10 calls the column 'img'; datasets re-saved by others often say 'image'.
        column = next((name for name in _HF_IMAGE_COLUMNS if name in names), "img")
        columns = split_columns(dataset_dict, split, [column, "label"])
        where = f"Hugging Face cifar10, split {split!r}"
        images = hf_images(columns[column], "RGB", (32, 32), where)
        payload[f"{split}_images"] = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        payload[f"{split}_labels"] = torch.from_numpy(checked_labels(columns["label"], NUM_CLASSES, where))
    return payload


def load_cifar10(data_seed: int, data_dir: Path | None = None) -> TaskData:
    """Train 45 000 / val 5 000 / test 10 000 images ``(N, 3, 32, 32)``, standardised per channel.

    Raises:
        FileNotFoundError: no CIFAR-10 under the data directory (the message says what to put where).
        DatasetFormatError: the files are there but malformed.
    """
    seed = check_data_seed(data_seed)
    payload, source = load_cached(DATASET, data_dir, RECIPE, cifar_from_files, cifar_from_hf)
    train_index, val_index = carve_validation(len(payload["train_labels"]), VAL_FRACTION, seed)
    images, labels = payload["train_images"], payload["train_labels"]

    def part(index: torch.Tensor) -> Split:
        return Split(standardise_images(images[index], MEAN, STD), labels[index])

    return TaskData(
        train=part(train_index),
        val=part(val_index),
        test=Split(standardise_images(payload["test_images"], MEAN, STD), payload["test_labels"].clone()),
        num_classes=NUM_CLASSES,
        info={
            "source": f"{source.kind}: {source.root}",
            "input_shape": (3, 32, 32),
            "normalization": {"mean": MEAN, "std": STD},
            "data_seed": seed,
        },
    )


def build_cnn(num_classes: int) -> nn.Module:
    """[conv-conv-pool] x2 (32, 64 channels), fc 4096-512-num_classes, dropout 0.25 / 0.5."""
    from gradretention.tasks.models.cifar import CifarCNN

    return CifarCNN(num_classes)


def build_resnet18(num_classes: int) -> nn.Module:
    """ResNet-18, CIFAR stem (3x3, no max-pool)."""
    from gradretention.tasks.models.cifar import ResNet18

    return ResNet18(num_classes)


def build_vgg16(num_classes: int) -> nn.Module:
    """VGG-16 with batch norm, classifier 512-512-512-num_classes with dropout 0.5."""
    from gradretention.tasks.models.cifar import VGG16

    return VGG16(num_classes, batch_norm=True)


_COMMON: dict[str, Any] = {
    "load": MemoisedLoad(load_cifar10),
    "metrics": ("accuracy", "f1"),
    "target_metric": "accuracy",
    "default_lr": 1e-3,
    "augment": augment_flip_crop,
    "needs_download": True,
}

CIFAR10_CNN = Task(
    name="cifar10-cnn",
    description="CIFAR-10 (pickles / HF); CNN 4 conv + 2 fc, flip+crop",
    build_model=build_cnn,
    target_value=0.75,
    default_epochs=30,
    default_batch_size=128,
    **_COMMON,
)

CIFAR10_RESNET18 = Task(
    name="cifar10-resnet18",
    description="CIFAR-10 (pickles / HF); ResNet-18, flip+crop",
    build_model=build_resnet18,
    target_value=0.9,
    default_epochs=50,
    default_batch_size=128,
    **_COMMON,
)

CIFAR10_VGG16 = Task(
    name="cifar10-vgg16",
    description="CIFAR-10 (pickles / HF); VGG-16 with batch norm (hypergradient paper), flip+crop",
    build_model=build_vgg16,
    target_value=0.88,
    default_epochs=50,
    default_batch_size=128,
    **_COMMON,
)

TASKS: tuple[Task, ...] = (CIFAR10_CNN, CIFAR10_RESNET18, CIFAR10_VGG16)
TASK_DATASETS: dict[str, str] = {task.name: DATASET for task in TASKS}
