"""Random and mutated bytes: only DatasetFormatError (or FileNotFoundError) may escape a reader."""

from __future__ import annotations

import gzip
import io
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradretention.tasks.readers import DatasetFormatError, load_cifar_pickle, read_idx, read_voc_mask
from gradretention.tasks.readers.idx import IMAGES_MAGIC, LABELS_MAGIC

from .realformats import cifar_batch, idx_bytes, py2_pickle, write_palette_png

# The tmp_path file is rewritten on every example, so sharing it across examples is fine.
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ALLOWED = (DatasetFormatError, FileNotFoundError)

VALID_IDX = idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
VALID_PICKLE = py2_pickle(cifar_batch(np.arange(3072, dtype=np.uint8).reshape(1, 3, 32, 32), [7], "1"))


def _valid_png() -> bytes:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        return write_palette_png(Path(folder) / "m.png", np.array([[0, 1, 15], [255, 20, 3]], np.uint8)).read_bytes()


VALID_PNG = _valid_png()


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """``valid`` with a few bytes overwritten, a cut, or junk appended: near-misses reach deep code."""
    edits = st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)), min_size=1, max_size=4)

    def apply(args: tuple[list[tuple[int, int]], int, bytes]) -> bytes:
        changes, cut, tail = args
        data = bytearray(valid)
        for position, value in changes:
            data[position] = value
        return bytes(data[:cut]) + tail

    return st.tuples(edits, st.integers(0, len(valid)), st.binary(max_size=8)).map(apply)


def _expect_only_format_errors(read) -> None:
    try:
        read()
    except ALLOWED:
        pass


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=64), mutated(VALID_IDX)),
    gz=st.booleans(),
    magic=st.sampled_from([IMAGES_MAGIC, LABELS_MAGIC]),
)
def test_idx_reader_only_raises_format_errors(tmp_path, data, gz, magic):
    path = tmp_path / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(data) if gz and len(data) % 2 else data)  # odd lengths: valid gzip of junk
    _expect_only_format_errors(lambda: read_idx(path, magic))


@FUZZ
@given(dims=st.tuples(*[st.integers(0, 2**32 - 1)] * 3), payload=st.binary(max_size=32))
def test_idx_reader_survives_any_declared_dims(tmp_path, dims, payload):
    path = tmp_path / "images"
    path.write_bytes(struct.pack(">IIII", IMAGES_MAGIC, *dims) + payload)
    try:
        images = read_idx(path, IMAGES_MAGIC)
    except ALLOWED:
        return
    assert images.shape == dims and images.size == len(payload)


@FUZZ
@given(data=st.one_of(st.binary(max_size=128), mutated(VALID_PICKLE)))
def test_cifar_unpickler_only_raises_format_errors(tmp_path, data):
    path = tmp_path / "data_batch_1"
    path.write_bytes(data)
    _expect_only_format_errors(lambda: load_cifar_pickle(path))


@FUZZ
@given(data=st.one_of(st.binary(max_size=128), mutated(VALID_PNG)))
def test_voc_mask_reader_only_raises_format_errors(tmp_path, data):
    path = tmp_path / "mask.png"
    path.write_bytes(data)
    try:
        mask = read_voc_mask(path)
    except ALLOWED:
        return
    assert mask.dtype == np.uint8 and set(np.unique(mask).tolist()) <= set(range(21)) | {255}


def test_fuzz_seeds_are_valid_files(tmp_path):
    # The mutation seeds must themselves read cleanly, or the fuzzing would only probe the first check.
    for name, data in (("a", VALID_IDX), ("data_batch_1", VALID_PICKLE), ("m.png", VALID_PNG)):
        (tmp_path / name).write_bytes(data)
    assert read_idx(tmp_path / "a", IMAGES_MAGIC).shape == (2, 3, 4)
    assert load_cifar_pickle(tmp_path / "data_batch_1")[b"labels"] == [7]
    assert read_voc_mask(tmp_path / "m.png").tolist() == [[0, 1, 15], [255, 20, 3]]
    assert io.BytesIO(VALID_PNG).read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_huge_dim_beside_a_zero_dim_is_a_format_error(tmp_path):
    # count = 0 passes the size checks; numpy cannot shape (2**31, 2**32 - 1, 0) and said so opaquely.
    path = tmp_path / "images"
    path.write_bytes(struct.pack(">IIII", IMAGES_MAGIC, 2**31, 2**32 - 1, 0))
    with pytest.raises(DatasetFormatError, match=r"header declares dims \(2147483648, 4294967295, 0\), one of them above"):
        read_idx(path, IMAGES_MAGIC)
