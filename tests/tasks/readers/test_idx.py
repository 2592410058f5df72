"""MNIST IDX reader: exact round trips of real-format files and every refusal."""

from __future__ import annotations

import gzip
import struct
import tracemalloc

import numpy as np
import pytest

from gradretention.tasks.readers import DatasetFormatError, read_idx, read_idx_images, read_idx_labels, read_mnist
from gradretention.tasks.readers.idx import IMAGES_MAGIC, LABELS_MAGIC

from .realformats import gzip_bomb, idx_bytes, write_idx, write_mnist


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_splits_read_back_exactly(tmp_path, rng, gz):
    written = write_mnist(tmp_path, rng, {"train": 7, "test": 3}, gz=gz)
    for split in ("train", "test"):
        images, labels = read_mnist(tmp_path, split)
        np.testing.assert_array_equal(images, written[split][0])
        np.testing.assert_array_equal(labels, written[split][1])
        assert images.dtype == np.uint8 and images.shape == (len(labels), 28, 28)
        assert labels.dtype == np.int64


def test_header_is_big_endian_and_dims_come_from_it(tmp_path):
    # 2 images of 3 rows x 4 cols: the header must be 00 00 08 03 | 00 00 00 02 | 00 00 00 03 | 00 00 00 04.
    images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "images", images)
    assert path.read_bytes()[:16] == bytes.fromhex("00000803 00000002 00000003 00000004")
    read = read_idx_images(path)
    assert read.shape == (2, 3, 4)
    assert read[1, 2, 3] == 23 and read[0, 1, 0] == 4  # C order: index = ((n * rows) + r) * cols + c


def test_plain_and_gz_files_may_be_mixed(tmp_path, rng):
    written = write_mnist(tmp_path, rng, {"train": 2, "test": 2}, gz=True)
    # Un-gzip one of the four: the reader takes whichever spelling each file has.
    gz_path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(gzip.decompress(gz_path.read_bytes()))
    gz_path.unlink()
    np.testing.assert_array_equal(read_mnist(tmp_path, "test")[1], written["test"][1])


def test_label_out_of_range_names_file_index_and_value(tmp_path):
    path = write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([3, 9, 10, 0, 255], dtype=np.uint8))
    expected = r"train-labels-idx1-ubyte: labels must be 0\.\.9, found 10 at index 2 \(2 labels"
    with pytest.raises(DatasetFormatError, match=expected):
        read_idx_labels(path)


def test_wrong_magic_says_expected_and_found(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros(5, dtype=np.uint8))  # a labels file
    with pytest.raises(DatasetFormatError) as caught:
        read_idx_images(path)
    message = str(caught.value)
    assert str(path) in message
    assert "expected IDX magic number 0x00000803 (an IDX images file: unsigned bytes, 3 dims)" in message
    assert "found 0x00000801 (an IDX labels file: unsigned bytes, 1 dim)" in message


def test_float_idx_file_is_refused(tmp_path):
    path = tmp_path / "floats"
    path.write_bytes(struct.pack(">II", 0x00000D01, 1) + struct.pack(">f", 1.0))
    with pytest.raises(DatasetFormatError, match=r"found 0x00000D01 \(an IDX file of element type 0x0D with 1 dims\)"):
        read_idx_labels(path)


def test_gzip_data_without_gz_name_gets_a_hint(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(3, dtype=np.uint8))))
    with pytest.raises(DatasetFormatError, match=r"found 0x1F8B08.. \(gzip data: a compressed file must be named \*\.gz\)"):
        read_idx_labels(path)


@pytest.mark.parametrize("cut", [2, 9, 16 + 11])
def test_truncated_file_is_refused(tmp_path, cut):
    data = idx_bytes(np.ones((2, 3, 2), dtype=np.uint8))  # 16-byte header + 12 bytes
    path = tmp_path / "short"
    path.write_bytes(data[:cut])
    with pytest.raises(DatasetFormatError, match=r"short: truncated"):
        read_idx(path, IMAGES_MAGIC)


def test_truncated_payload_reports_needed_and_found_bytes(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(idx_bytes(np.ones((2, 3, 2), dtype=np.uint8))[:-5])
    with pytest.raises(DatasetFormatError, match=r"dims \(2, 3, 2\) need 12 bytes, found 7"):
        read_idx(path, IMAGES_MAGIC)


def test_trailing_data_is_refused(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.ones(4, dtype=np.uint8)) + b"\x00")
    with pytest.raises(DatasetFormatError, match="need 4 bytes but the file holds more"):
        read_idx(path, LABELS_MAGIC)


def test_oversized_dims_are_refused_before_reading(tmp_path):
    path = tmp_path / "huge"
    path.write_bytes(struct.pack(">IIII", IMAGES_MAGIC, 2**32 - 1, 2**32 - 1, 2**32 - 1))
    with pytest.raises(DatasetFormatError, match=r"huge: header declares dims .* more than the 1000000000"):
        read_idx(path, IMAGES_MAGIC)


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    # Header says 10 labels; the stream inflates to 1 GiB of zeros after it. The trailer is
    # forged to agree with the header, so only the streaming cap can stop it.
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    bomb = gzip_bomb(struct.pack(">II", LABELS_MAGIC, 10), expanded_mib=1024)
    path.write_bytes(bomb[:-4] + struct.pack("<I", 18))
    assert path.stat().st_size < 2 * 2**20
    tracemalloc.start()
    try:
        with pytest.raises(DatasetFormatError, match="need 10 bytes but the file holds more"):
            read_idx_labels(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"reading the bomb allocated {peak} bytes"


def test_corrupt_and_truncated_gzip_are_refused(tmp_path):
    good = gzip.compress(idx_bytes(np.arange(300, dtype=np.uint8).reshape(3, 10, 10)))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetFormatError, match="cut.gz"):
        read_idx(cut, IMAGES_MAGIC)
    not_gzip = tmp_path / "plain.gz"
    not_gzip.write_bytes(idx_bytes(np.zeros(3, dtype=np.uint8)))
    with pytest.raises(DatasetFormatError, match="plain.gz: unreadable or corrupt compressed data"):
        read_idx(not_gzip, LABELS_MAGIC)


def test_count_mismatch_between_images_and_labels(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, dtype=np.uint8))
    with pytest.raises(DatasetFormatError, match="holds 2 labels but .* holds 3 images"):
        read_mnist(tmp_path, "train")


def test_missing_file_names_both_spellings(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte or .*train-images-idx3-ubyte\.gz"):
        read_mnist(tmp_path, "train")


def test_unknown_split_lists_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="Invalid MNIST split: 'validation'; valid splits: train, test"):
        read_mnist(tmp_path, "validation")
