"""MNIST in its original IDX format (``train-images-idx3-ubyte`` and friends, plain or ``.gz``).

An IDX file is a 4-byte big-endian magic number ``0x0000TTDD`` (``TT`` the element type,
``0x08`` = unsigned byte; ``DD`` the number of dimensions), then ``DD`` big-endian
uint32 dimension sizes, then the elements in C order. MNIST uses two kinds:

* images ``0x00000803``: ``(count, rows, cols)`` bytes, 0 = background;
* labels ``0x00000801``: ``(count,)`` bytes holding digits 0-9.

Everything is checked before it is trusted: the magic, the declared size against
:data:`MAX_ELEMENTS`, and the payload length against the product of the dims. A
``.gz`` file is decompressed incrementally and never past the size its header
declares, so a decompression bomb costs at most one chunk beyond that.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import DatasetFormatError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
MAX_ELEMENTS = 10**9  # 1 GB of uint8: far above MNIST's 47 MB, far below a hostile header's 2**96
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
        DatasetFormatError: wrong magic, oversized dims, truncated or over-long payload,
            or a corrupt gzip stream; the message names the file.
    """
    path = Path(path)
    ndim = magic & 0xFF
    handle = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    with handle as stream:
        try:
            found = struct.unpack(">I", _read_exactly(stream, 4, path, "a 4-byte magic number"))[0]
            if found != magic:
                raise DatasetFormatError(
                    f"{path}: expected IDX magic number 0x{magic:08X} ({_describe_magic(magic)}), "
                    f"found 0x{found:08X} ({_describe_magic(found)})"
                )
            raw_dims = _read_exactly(stream, 4 * ndim, path, f"{ndim} big-endian uint32 dimension sizes")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            count = math.prod(dims)
            if count > max_elements:
                raise DatasetFormatError(
                    f"{path}: header declares dims {dims} = {count} elements, more than the "
                    f"{max_elements} this reader accepts; the file is corrupt or not MNIST"
                )
            payload = _read_payload(stream, count, path, dims)
        except (OSError, EOFError, zlib.error) as error:
            # gzip reports a bad or truncated stream with these; all mean "not a valid file".
            raise DatasetFormatError(f"{path}: unreadable or corrupt compressed data ({error})") from error
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


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


def _read_payload(stream: BinaryIO, count: int, path: Path, dims: tuple[int, ...]) -> bytearray:
    # Read at most one byte past the declared size, in chunks, so neither a lying
    # header nor a gzip bomb can make us allocate more than the file really holds.
    payload = bytearray()
    while len(payload) <= count:
        chunk = stream.read(min(_CHUNK, count + 1 - len(payload)))
        if not chunk:
            break
        payload += chunk
    if len(payload) < count:
        raise DatasetFormatError(
            f"{path}: truncated payload: dims {dims} need {count} bytes, found {len(payload)}"
        )
    if len(payload) > count:
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
