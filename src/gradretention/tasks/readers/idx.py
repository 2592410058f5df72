"""MNIST in its original IDX format (``train-images-idx3-ubyte`` and friends, plain or ``.gz``).

An IDX file is a 4-byte big-endian magic number ``0x0000TTDD`` (``TT`` the element type,
``0x08`` = unsigned byte; ``DD`` the number of dimensions), then ``DD`` big-endian
uint32 dimension sizes, then the elements in C order. MNIST uses two kinds:

* images ``0x00000803``: ``(count, rows, cols)`` bytes, 0 = background;
* labels ``0x00000801``: ``(count,)`` bytes holding digits 0-9.

Everything is checked before it is trusted, and before the payload is allocated: the
magic; the declared size against :data:`MAX_ELEMENTS`; for a plain file, the file's
length against the header and the product of the dims; for a ``.gz`` file, the declared
size against what the compressed file could really hold (:data:`MAX_GZIP_RATIO` times
its length) and against the decompressed length its gzip trailer records. Only then is
the array allocated, once and at its exact size, and the stream decompressed into it
chunk by chunk, never past the declared size: a lying header or a decompression bomb
costs at most one chunk.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import DatasetFormatError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
MAX_ELEMENTS = 10**9  # 1 GB of uint8: far above MNIST's 47 MB, far below a hostile header's 2**96
# Real IDX files compress at most ~5:1 (MNIST train images 4.8:1, Fashion-MNIST 1.8:1, labels 2:1);
# deflate itself reaches 1032:1 on zeros. 64:1 leaves a wide margin for real data while a
# 97 KB file can no longer claim 100 MB. Below _GZIP_FLOOR bytes any ratio is allowed: cheap anyway.
MAX_GZIP_RATIO = 64
_GZIP_FLOOR = 16 << 20
NUM_CLASSES = 10
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_KNOWN_MAGICS = {
    IMAGES_MAGIC: "an IDX images file: unsigned bytes, 3 dims",
    LABELS_MAGIC: "an IDX labels file: unsigned bytes, 1 dim",
}
_CHUNK = 1 << 20


def read_idx(path: str | Path, magic: int, max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """Read one unsigned-byte IDX file whose magic number must equal ``magic``.

    Args:
        path: the file; a name ending in ``.gz`` is read through gzip.
        magic: :data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC` (any ``0x000008DD`` works).
        max_elements: refuse headers that declare more elements than this.

    Returns:
        A ``uint8`` array shaped as the header's dims.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DatasetFormatError: wrong magic, oversized dims, a size the file cannot hold,
            truncated or over-long payload, or a corrupt gzip stream; the message names
            the file. Every size check runs before the payload is allocated.
    """
    path = Path(path)
    ndim = magic & 0xFF
    compressed = path.name.endswith(".gz")
    with open(path, "rb") as raw:
        size = os.fstat(raw.fileno()).st_size
        trailer = _gzip_trailer(raw, size) if compressed else None
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw  # type: ignore[assignment]
        try:
            dims = _read_dims(stream, path, magic, ndim)
            count = math.prod(dims)
            header = 4 + 4 * ndim
            if count > max_elements:
                raise DatasetFormatError(
                    f"{path}: header declares dims {dims} = {count} elements, more than the "
                    f"{max_elements} this reader accepts; the file is corrupt or not MNIST"
                )
            # One dim alone above the cap is corrupt even when another dim is 0 (count 0): numpy
            # would refuse to shape an empty array as (2**31, 2**32, 0) with an opaque error.
            if max(dims, default=0) > max_elements:
                raise DatasetFormatError(
                    f"{path}: header declares dims {dims}, one of them above the {max_elements} elements "
                    "this reader accepts; the file is corrupt or not MNIST"
                )
            if trailer is None:
                _check_plain_size(path, dims, count, size - header)
            else:
                _check_gzip_size(path, dims, header + count, size, trailer)
            payload = _read_payload(stream, count, path, dims)
        except (OSError, EOFError, zlib.error) as error:
            # gzip reports a bad or truncated stream with these; all mean "not a valid file".
            raise DatasetFormatError(f"{path}: unreadable or corrupt compressed data ({error})") from error
    return payload.reshape(dims)


def _read_dims(stream: BinaryIO, path: Path, magic: int, ndim: int) -> tuple[int, ...]:
    found = struct.unpack(">I", _read_exactly(stream, 4, path, "a 4-byte magic number"))[0]
    if found != magic:
        raise DatasetFormatError(
            f"{path}: expected IDX magic number 0x{magic:08X} ({_describe_magic(magic)}), "
            f"found 0x{found:08X} ({_describe_magic(found)})"
        )
    raw_dims = _read_exactly(stream, 4 * ndim, path, f"{ndim} big-endian uint32 dimension sizes")
    return struct.unpack(f">{ndim}I", raw_dims)


def _gzip_trailer(raw: BinaryIO, size: int) -> int | None:
    """ISIZE, the last 4 bytes of a gzip file: its decompressed length modulo 2**32 (RFC 1952)."""
    if size < 18:  # smaller than an empty gzip member: GzipFile reports it as corrupt
        return -1
    raw.seek(size - 4)
    value = struct.unpack("<I", raw.read(4))[0]
    raw.seek(0)
    return value


def _check_plain_size(path: Path, dims: tuple[int, ...], count: int, found: int) -> None:
    if found < count:
        raise DatasetFormatError(f"{path}: truncated payload: dims {dims} need {count} bytes, found {found}")
    if found > count:
        raise DatasetFormatError(
            f"{path}: dims {dims} need {count} bytes but the file holds more data after them ({found - count} bytes)"
        )


def _check_gzip_size(path: Path, dims: tuple[int, ...], total: int, size: int, trailer: int) -> None:
    ceiling = max(_GZIP_FLOOR, size * MAX_GZIP_RATIO)
    if total > ceiling:
        raise DatasetFormatError(
            f"{path}: header declares dims {dims} = {total} bytes decompressed, but a {size}-byte gzip file "
            f"holds at most {ceiling} bytes of real data (ratio {MAX_GZIP_RATIO}:1; MNIST compresses 4.8:1); "
            "refused before decompressing: a decompression bomb or a corrupt header"
        )
    if trailer != total % 2**32:
        raise DatasetFormatError(
            f"{path}: header and dims {dims} make {total} bytes, but the gzip trailer records "
            f"{trailer} decompressed bytes (mod 2**32): truncated, padded or concatenated gzip data "
            "(gunzip it and use the plain file if it is intact)"
        )


def _describe_magic(value: int) -> str:
    if value in _KNOWN_MAGICS:
        return _KNOWN_MAGICS[value]
    if value >> 16 == 0x1F8B:
        return "gzip data: a compressed file must be named *.gz"
    if value >> 16:
        return "not an IDX file"
    return f"an IDX file of element type 0x{(value >> 8) & 0xFF:02X} with {value & 0xFF} dims"


def _read_exactly(stream: BinaryIO, size: int, path: Path, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise DatasetFormatError(f"{path}: truncated header: expected {what} ({size} bytes), found {len(data)} bytes")
    return data


def _read_payload(stream: BinaryIO, count: int, path: Path, dims: tuple[int, ...]) -> np.ndarray:
    # The sizes are checked: allocate once, exactly, and fill in chunks so that gzip
    # never inflates more than one chunk past what the header declared.
    payload = np.empty(count, dtype=np.uint8)
    view = memoryview(payload)
    filled = 0
    while filled < count:
        got = stream.readinto(view[filled : filled + _CHUNK])
        if not got:
            break
        filled += got
    if filled < count:
        raise DatasetFormatError(f"{path}: truncated payload: dims {dims} need {count} bytes, found {filled}")
    if stream.read(1):
        raise DatasetFormatError(f"{path}: dims {dims} need {count} bytes but the file holds more data after them")
    return payload


def read_idx_images(path: str | Path) -> np.ndarray:
    """``uint8`` images ``(count, rows, cols)`` from an IDX images file (magic ``0x00000803``)."""
    return read_idx(path, IMAGES_MAGIC)


def read_idx_labels(path: str | Path, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """``int64`` labels ``(count,)`` from an IDX labels file; each must lie in ``0..num_classes-1``.

    Raises:
        DatasetFormatError: the file is malformed or holds a label out of range
            (the message names the file, the first bad index and value).
    """
    labels = read_idx(path, LABELS_MAGIC)
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        raise DatasetFormatError(
            f"{path}: labels must be 0..{num_classes - 1}, found {int(labels[bad[0]])} at index {int(bad[0])} "
            f"({bad.size} labels out of range)"
        )
    return labels.astype(np.int64)


def mnist_file(root: str | Path, name: str) -> Path:
    """``root/name`` or, failing that, ``root/name.gz``; FileNotFoundError naming both."""
    root = Path(root)
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"MNIST file not found: expected {root / name} or {root / name}.gz")


def read_mnist(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one MNIST split from a folder of the four IDX files.

    Args:
        root: the folder holding ``train-images-idx3-ubyte`` etc. (each may be ``.gz``).
        split: ``"train"`` (60 000 examples) or ``"test"`` (the ``t10k`` files, 10 000).

    Returns:
        ``(images, labels)``: ``uint8`` ``(N, 28, 28)`` (rows and cols as the header says)
        and ``int64`` ``(N,)`` in ``0..9``.

    Example:
        >>> images, labels = read_mnist("data/mnist", "test")  # doctest: +SKIP
        >>> images.shape, labels[:3]                             # doctest: +SKIP
        ((10000, 28, 28), array([7, 2, 1]))
    """
    if split not in MNIST_FILES:
        raise ValueError(f"Invalid MNIST split: {split!r}; valid splits: {', '.join(MNIST_FILES)}")
    images_name, labels_name = MNIST_FILES[split]
    images_path, labels_path = mnist_file(root, images_name), mnist_file(root, labels_name)
    images, labels = read_idx_images(images_path), read_idx_labels(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise DatasetFormatError(
            f"{labels_path}: holds {labels.shape[0]} labels but {images_path} holds {images.shape[0]} images"
        )
    return images, labels
