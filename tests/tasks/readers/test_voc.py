"""PASCAL VOC 2012 segmentation reader: palette masks, resizing, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gradretention.tasks.readers import DatasetFormatError, read_voc_mask, read_voc_segmentation
from gradretention.tasks.readers.voc import IGNORE_INDEX

from .realformats import bomb_png, voc_palette, write_palette_png, write_voc

COLOURS = {"2007_000032": (200, 30, 90), "2007_000039": (10, 240, 120), "2008_000123": (128, 128, 0)}


def _masks() -> dict[str, np.ndarray]:
    first = np.zeros((5, 6), dtype=np.uint8)
    first[1:4, 1:5] = 15  # person
    first[0, :] = IGNORE_INDEX  # border
    second = np.arange(30, dtype=np.uint8).reshape(5, 6) % 21
    third = np.full((4, 4), 1, dtype=np.uint8)
    return {"2007_000032": first, "2007_000039": second, "2008_000123": third}


@pytest.fixture
def voc_root(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    masks = _masks()
    splits = {"train": ["2007_000032", "2007_000039"], "val": ["2008_000123"]}
    write_voc(root, {k: v for k, v in masks.items() if k != "2008_000123"}, {"train": splits["train"]}, COLOURS)
    write_voc(root, {"2008_000123": masks["2008_000123"]}, {"val": splits["val"]}, COLOURS)
    return root


def test_masks_read_back_exactly_at_original_size(voc_root):
    images, masks = read_voc_segmentation(voc_root, "train", size=(5, 6))
    assert images.dtype == torch.uint8 and images.shape == (2, 3, 5, 6)
    assert masks.dtype == torch.int64 and masks.shape == (2, 5, 6)
    np.testing.assert_array_equal(masks[0].numpy(), _masks()["2007_000032"])
    np.testing.assert_array_equal(masks[1].numpy(), _masks()["2007_000039"])
    assert set(masks[0].unique().tolist()) == {0, 15, 255}


def test_images_are_rgb_channels_first(voc_root):
    images, _ = read_voc_segmentation(voc_root, "train", size=(5, 6))
    # Solid-colour JPEGs decode to within 2 levels of their colour, per channel in RGB order.
    for index, image_id in enumerate(["2007_000032", "2007_000039"]):
        expected = torch.tensor(COLOURS[image_id], dtype=torch.int16).view(3, 1, 1)
        assert (images[index].to(torch.int16) - expected).abs().max() <= 2


def test_resize_is_nearest_for_masks_and_keeps_solid_colours(voc_root):
    images, masks = read_voc_segmentation(voc_root, "train", size=(2, 3))
    original = _masks()["2007_000039"]
    # Pillow's nearest samples source pixel floor((i + 0.5) * scale): rows 5->2 take 1, 3; cols 6->3 take 1, 3, 5.
    np.testing.assert_array_equal(masks[1].numpy(), original[[1, 3]][:, [1, 3, 5]])
    expected = torch.tensor(COLOURS["2007_000032"], dtype=torch.int16).view(3, 1, 1)
    assert images.shape == (2, 3, 2, 3) and (images[0].to(torch.int16) - expected).abs().max() <= 2


def test_square_size_limit_and_other_split(voc_root):
    images, masks = read_voc_segmentation(voc_root, "val", size=8)
    assert images.shape == (1, 3, 8, 8) and masks.unique().tolist() == [1]
    images, _ = read_voc_segmentation(voc_root, "train", size=4, limit=1)
    assert images.shape == (1, 3, 4, 4)


def test_mask_is_read_by_value_not_by_colour(tmp_path):
    # The palette is display-only: a mask whose palette is all black still holds class 7.
    path = tmp_path / "m.png"
    image = Image.frombytes("P", (2, 2), bytes([7, 7, 0, 255]))
    image.putpalette([0, 0, 0] * 256)
    image.save(path)
    np.testing.assert_array_equal(read_voc_mask(path), [[7, 7], [0, 255]])


def test_unknown_mask_values_are_listed(tmp_path):
    values = np.array([[0, 21, 100], [255, 20, 21]], dtype=np.uint8)
    path = write_palette_png(tmp_path / "2007_000001.png", values)
    expected = r"2007_000001\.png: mask values must be class indices 0-20 or 255, found unknown values \[21, 100\]"
    with pytest.raises(DatasetFormatError, match=expected):
        read_voc_mask(path)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_non_palette_mask_is_refused(tmp_path, mode):
    path = tmp_path / "mask.png"
    Image.new(mode, (3, 3)).save(path)
    with pytest.raises(DatasetFormatError, match=rf"mask\.png: expected a palette \('P' mode\) PNG .*found mode '{mode}'"):
        read_voc_mask(path)


def test_bomb_sized_png_header_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(5000, 5000))  # 25 Mpx declared, a few hundred bytes on disk
    with pytest.raises(DatasetFormatError, match=r"bomb\.png: header declares 5000x5000 = 25000000 pixels.*decompression bomb"):
        read_voc_mask(path)
    huge = tmp_path / "huge.png"
    huge.write_bytes(bomb_png(100_000, 100_000))  # beyond Pillow's own limit too
    with pytest.raises(DatasetFormatError, match=r"huge\.png: .*ecompression"):
        read_voc_mask(huge)


def test_bomb_png_is_a_real_png_header(tmp_path):
    path = tmp_path / "small.png"
    path.write_bytes(bomb_png(3, 2))
    with Image.open(path) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "P", (3, 2))
        assert image.getpalette()[:6] == voc_palette()[:6]


def test_jpeg_where_a_png_mask_belongs_is_refused(tmp_path):
    path = tmp_path / "2007_000032.png"
    Image.new("RGB", (4, 4)).save(path, format="JPEG")
    with pytest.raises(DatasetFormatError, match=r"2007_000032\.png: expected a valid PNG file"):
        read_voc_mask(path)


def test_mask_and_image_of_different_sizes_are_refused(voc_root):
    write_palette_png(voc_root / "SegmentationClass" / "2007_000039.png", np.zeros((7, 6), dtype=np.uint8))
    with pytest.raises(DatasetFormatError, match=r"2007_000039\.png: mask is 6x7 but its image .*2007_000039\.jpg is 6x5"):
        read_voc_segmentation(voc_root, "train", size=4)


def test_missing_image_raises_file_not_found(voc_root):
    (voc_root / "JPEGImages" / "2007_000039.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"2007_000039\.jpg"):
        read_voc_segmentation(voc_root, "train")


def test_bad_arguments(voc_root):
    with pytest.raises(ValueError, match="Invalid VOC split: 'test'; valid splits: train, val, trainval"):
        read_voc_segmentation(voc_root, "test")
    with pytest.raises(ValueError, match=r"Invalid VOC size: \(0, 4\)"):
        read_voc_segmentation(voc_root, "train", size=(0, 4))
    (voc_root / "ImageSets" / "Segmentation" / "train.txt").write_text("../../etc/passwd\n")
    expected = r"train\.txt: expected image ids like 2007_000032, found '\.\./\.\./etc/passwd'"
    with pytest.raises(DatasetFormatError, match=expected):
        read_voc_segmentation(voc_root, "train")
