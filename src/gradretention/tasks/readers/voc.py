"""PASCAL VOC 2012 semantic segmentation from ``VOCdevkit/VOC2012/``.

The reader uses three parts of the official tree:

* ``ImageSets/Segmentation/{train,val,trainval}.txt``: one image id per line (``2007_000032``);
* ``JPEGImages/<id>.jpg``: the RGB photo;
* ``SegmentationClass/<id>.png``: a palette ("P" mode) PNG whose pixel *values* are class
  indices 0-20 (0 = background, :data:`CLASSES`) and 255 (:data:`IGNORE_INDEX`, object
  borders and "difficult" regions). The palette colours are only for display.

Images are resized with Pillow's bilinear filter, masks with nearest neighbour so no new
class values appear. Before a file is decoded its header size is checked against
``max_pixels``, so a decompression bomb is refused without being unpacked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .errors import DatasetFormatError

VOC_DIR = "VOCdevkit/VOC2012"
SPLITS = ("train", "val", "trainval")
CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
NUM_CLASSES = len(CLASSES)
IGNORE_INDEX = 255
MAX_PIXELS = 4096 * 4096  # VOC images are at most 500 x 500
_VALID_VALUES = np.array([*range(NUM_CLASSES), IGNORE_INDEX])


def _open_checked(
    path: Path, fmt: str, max_pixels: int, use: Callable[[Image.Image], np.ndarray]
) -> tuple[np.ndarray, tuple[int, int]]:
    """Open ``path`` as ``fmt`` only, refuse it if its header is too large, decode with ``use``.

    Returns ``use``'s array and the original ``(width, height)``.
    """
    with open(path, "rb") as handle:  # a missing file raises FileNotFoundError here, unwrapped
        try:
            with Image.open(handle, formats=[fmt]) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise DatasetFormatError(
                        f"{path}: header declares {width}x{height} = {width * height} pixels, more than the "
                        f"{max_pixels} allowed (possible decompression bomb)"
                    )
                return use(image), (width, height)
        except DatasetFormatError:
            raise
        except Exception as error:  # noqa: BLE001 - Pillow signals corrupt data with many exception types
            found = f"{type(error).__name__}: {error}"
            raise DatasetFormatError(f"{path}: expected a valid {fmt} file ({found})") from error


def read_voc_mask(path: str | Path, size: tuple[int, int] | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Class-index mask ``uint8 (H, W)`` from a VOC ``SegmentationClass`` palette PNG.

    Args:
        path: the PNG.
        size: ``(height, width)`` to resize to with nearest neighbour; ``None`` keeps it.
        max_pixels: refuse images whose header declares more pixels.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DatasetFormatError: not a PNG, not palette mode, too large, or pixel values other
            than 0-20 and 255 (the message lists the unknown values).
    """
    return _load_mask(Path(path), size, max_pixels)[0]


def _load_mask(path: Path, size: tuple[int, int] | None, max_pixels: int) -> tuple[np.ndarray, tuple[int, int]]:
    def decode(image: Image.Image) -> np.ndarray:
        if image.mode != "P":
            raise DatasetFormatError(
                f"{path}: expected a palette ('P' mode) PNG whose values are class indices, found mode {image.mode!r}"
            )
        values = np.asarray(image)
        unknown = np.setdiff1d(np.unique(values), _VALID_VALUES)
        if unknown.size:
            raise DatasetFormatError(
                f"{path}: mask values must be class indices 0-{NUM_CLASSES - 1} or {IGNORE_INDEX}, "
                f"found unknown values {unknown.tolist()}"
            )
        if size is not None:
            values = np.asarray(image.resize((size[1], size[0]), Image.Resampling.NEAREST))
        return values

    return _open_checked(path, "PNG", max_pixels, decode)


def read_voc_image(path: str | Path, size: tuple[int, int] | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """RGB image ``uint8 (H, W, 3)`` from a VOC ``JPEGImages`` file, bilinear-resized to ``size``."""
    return _load_image(Path(path), size, max_pixels)[0]


def _load_image(path: Path, size: tuple[int, int] | None, max_pixels: int) -> tuple[np.ndarray, tuple[int, int]]:
    def decode(image: Image.Image) -> np.ndarray:
        rgb = image.convert("RGB")
        if size is not None:
            rgb = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(rgb)

    return _open_checked(path, "JPEG", max_pixels, decode)


def read_voc_ids(root: str | Path, split: str) -> list[str]:
    """Image ids listed in ``ImageSets/Segmentation/<split>.txt``."""
    if split not in SPLITS:
        raise ValueError(f"Invalid VOC split: {split!r}; valid splits: {', '.join(SPLITS)}")
    path = Path(root) / "ImageSets" / "Segmentation" / f"{split}.txt"
    try:
        lines = path.read_text(encoding="ascii").split()
    except UnicodeDecodeError as error:
        raise DatasetFormatError(f"{path}: expected one ASCII image id per line ({error})") from error
    bad = [line for line in lines if "/" in line or "\\" in line or line.startswith(".")]
    if bad:
        raise DatasetFormatError(f"{path}: expected image ids like 2007_000032, found {bad[0]!r}")
    return lines


def read_voc_segmentation(
    root: str | Path,
    split: str,
    size: int | tuple[int, int] = 64,
    limit: int | None = None,
    max_pixels: int = MAX_PIXELS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and masks of one VOC 2012 segmentation split, all resized to one size.

    Args:
        root: the ``VOCdevkit/VOC2012`` folder.
        split: ``"train"`` (1 464 images), ``"val"`` (1 449) or ``"trainval"``.
        size: ``(height, width)``, or one int for a square.
        limit: read only the first ``limit`` ids of the split (``None``: all).
        max_pixels: refuse any file whose header declares more pixels.

    Returns:
        ``(images, masks)``: ``torch.uint8 (N, 3, H, W)`` and ``torch.int64 (N, H, W)``
        holding 0-20 and 255 (ignore).

    Example:
        >>> images, masks = read_voc_segmentation("data/VOCdevkit/VOC2012", "val", 64, limit=8)  # doctest: +SKIP
        >>> images.shape, masks.dtype                                                           # doctest: +SKIP
        (torch.Size([8, 3, 64, 64]), torch.int64)
    """
    height, width = (size, size) if isinstance(size, int) else size
    if height <= 0 or width <= 0:
        raise ValueError(f"Invalid VOC size: {size!r}; expected positive (height, width)")
    if limit is not None and limit < 0:
        raise ValueError(f"Invalid limit value: {limit}")
    root = Path(root)
    ids = read_voc_ids(root, split)[:limit]
    images = np.empty((len(ids), height, width, 3), dtype=np.uint8)
    masks = np.empty((len(ids), height, width), dtype=np.int64)
    for index, image_id in enumerate(ids):
        image_path = root / "JPEGImages" / f"{image_id}.jpg"
        mask_path = root / "SegmentationClass" / f"{image_id}.png"
        images[index], image_size = _load_image(image_path, (height, width), max_pixels)
        masks[index], mask_size = _load_mask(mask_path, (height, width), max_pixels)
        if image_size != mask_size:
            # After resizing both would fit the arrays; a mask drawn for another photo would silently misalign.
            raise DatasetFormatError(
                f"{mask_path}: mask is {mask_size[0]}x{mask_size[1]} but its image {image_path} is "
                f"{image_size[0]}x{image_size[1]} (width x height)"
            )
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(masks)
