"""PASCAL VOC 2012 semantic segmentation with a small U-Net (21 classes, 255 ignored).

Data: ``<data_dir>/VOCdevkit/VOC2012/`` (``JPEGImages``, ``SegmentationClass`` palette
PNGs, ``ImageSets/Segmentation/{train,val}.txt``); VOC has no Hugging Face copy this tool
reads, so ``--download`` does not apply. Images are resized once to 64x64 (bilinear),
masks with nearest neighbour, and the decoded tensors are cached beside the data.

Splits: the official ``train`` list (1 464 images) is split per data seed into train and
validation (10 %); the official ``val`` list (1 449 images), on which VOC results are
usually reported, is the test split. Images are standardised with the ImageNet channel
statistics. Metrics: mean IoU over the classes present in truth or prediction, and
pixel accuracy; pixels labelled 255 (object borders, "difficult") count for neither
them nor the loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradretention.tasks.base import Split, Task, TaskData
from gradretention.tasks.datacache import MemoisedLoad, Payload, carve_validation, load_cached
from gradretention.tasks.mnist_tasks import standardise_images
from gradretention.tasks.splits import check_data_seed

DATASET = "voc"
NUM_CLASSES = 21
IGNORE_INDEX = 255
IMAGE_SIZE = 64  # height = width; the U-Net's 3 levels need a multiple of 8
MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, the usual choice for VOC
STD = (0.229, 0.224, 0.225)
VAL_FRACTION = 0.1
RECIPE = f"uint8-{IMAGE_SIZE}px-v1"


def voc_from_files(root: Path) -> Payload:
    """Resized ``uint8`` images ``(N, 3, 64, 64)`` and masks ``(N, 64, 64)`` of the train and val lists."""
    from gradretention.tasks.readers import read_voc_segmentation

    payload: Payload = {}
    for split, official in (("train", "train"), ("test", "val")):
        images, masks = read_voc_segmentation(root, official, IMAGE_SIZE)
        payload[f"{split}_images"] = images
        payload[f"{split}_masks"] = masks.to(torch.uint8)  # 0-20 and 255 fit a byte
    return payload


def voc_from_hf(dataset_dict: Any) -> Payload:
    """Never reached: VOC has no Hugging Face copy (``locate_source`` only offers the files)."""
    raise FileNotFoundError("PASCAL VOC 2012 is read from VOCdevkit/VOC2012 only; see `gradretention data`")


def load_voc(data_seed: int, data_dir: Path | None = None) -> TaskData:
    """Images ``(N, 3, 64, 64)`` standardised, masks ``(N, 64, 64)`` int64 with 255 = ignore.

    Raises:
        FileNotFoundError: no VOC tree under the data directory (the message says what to put where).
        DatasetFormatError: a file is there but malformed (e.g. a mask with unknown colours).
    """
    seed = check_data_seed(data_seed)
    payload, source = load_cached(DATASET, data_dir, RECIPE, voc_from_files, voc_from_hf)
    train_index, val_index = carve_validation(len(payload["train_masks"]), VAL_FRACTION, seed)
    images, masks = payload["train_images"], payload["train_masks"]

    def part(index: torch.Tensor) -> Split:
        return Split(standardise_images(images[index], MEAN, STD), masks[index].long())

    return TaskData(
        train=part(train_index),
        val=part(val_index),
        test=Split(standardise_images(payload["test_images"], MEAN, STD), payload["test_masks"].long()),
        num_classes=NUM_CLASSES,
        info={
            "source": f"{source.kind}: {source.root}",
            "input_shape": (3, IMAGE_SIZE, IMAGE_SIZE),
            "normalization": {"mean": MEAN, "std": STD},
            "ignore_index": IGNORE_INDEX,
            "data_seed": seed,
        },
    )


def build_unet(num_classes: int) -> nn.Module:
    """U-Net with 3 levels, base width 16 (16-32-64-128 channels), batch norm."""
    from gradretention.tasks.models.unet import UNet

    return UNet(num_classes, base_width=16, levels=3)


def voc_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean cross entropy over the pixels that are not 255."""
    from gradretention.tasks.models.unet import segmentation_loss

    return segmentation_loss(logits, masks, IGNORE_INDEX)


def voc_metrics(outputs: list[torch.Tensor], targets: list[torch.Tensor]) -> dict[str, float]:
    """``miou`` and ``pixel_accuracy`` over a whole split, 255 ignored."""
    from gradretention.tasks.models.unet import segmentation_metrics

    return segmentation_metrics(outputs, targets, NUM_CLASSES, IGNORE_INDEX)


VOC_UNET = Task(
    name="voc-unet",
    description="PASCAL VOC 2012 segmentation (VOCdevkit), 64x64; U-Net, 21 classes",
    load=MemoisedLoad(load_voc),
    build_model=build_unet,
    target_metric="miou",
    target_value=0.3,
    metrics=("miou", "pixel_accuracy"),
    default_epochs=50,
    default_batch_size=16,
    default_lr=1e-3,
    loss_fn=voc_loss,
    metric_fn=voc_metrics,
    needs_download=True,
)

TASKS: tuple[Task, ...] = (VOC_UNET,)
TASK_DATASETS: dict[str, str] = {"voc-unet": DATASET}
