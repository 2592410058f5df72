"""Writers for tiny files in exactly the formats the real datasets ship in.

Each writer mirrors the original release byte for byte where it matters: IDX headers are
big-endian ``struct`` words; CIFAR batches are Python 2 protocol-2 pickles (strings as
``SHORT_BINSTRING``/``BINSTRING``, arrays via ``numpy.core.multiarray._reconstruct``);
AG_NEWS rows are fully quoted with no header; VOC masks are palette PNGs with the VOC
colour map; PNG chunks carry real CRCs.
"""

from __future__ import annotations

import csv
import gzip
import json
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# --- MNIST IDX --------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An unsigned-byte IDX file: magic ``0x000008DD``, big-endian dims, then the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x0800 | array.ndim if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write ``array`` as IDX to ``path`` (``path.gz`` gzip-compressed when ``gz``)."""
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


def write_mnist(root: Path, rng: np.random.Generator, sizes: dict[str, int], gz: bool = False) -> dict[str, Any]:
    """The four MNIST files with random 28x28 images and digits; returns what was written."""
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = rng.integers(0, 256, size=(sizes[split], 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=sizes[split], dtype=np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte", images, gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, gz)
        written[split] = (images, labels)
    return written


def gzip_bomb(header: bytes, expanded_mib: int) -> bytes:
    """``header`` followed by ``expanded_mib`` MiB of zeros, as concatenated gzip members.

    Concatenated members are one valid gzip stream, so a 1 GiB bomb costs ~1 MB to build.
    """
    zeros_member = gzip.compress(bytes(1 << 20), compresslevel=9)
    return gzip.compress(header) + zeros_member * expanded_mib


# --- CIFAR-10 pickles -------------------------------------------------------------------


class Python2Pickler(pickle._Pickler):  # type: ignore[name-defined]  # the pure-Python pickler lets us override
    """Pickles as Python 2's cPickle did for the CIFAR release: protocol 2, str as BINSTRING.

    Python 2 ``str`` objects (the dict keys, the dtype code ``'u1'``, the array's raw
    data) were written with ``SHORT_BINSTRING``/``BINSTRING``; numpy lived at
    ``numpy.core``. Unpickled with ``encoding="bytes"`` they come back as ``bytes``.
    """

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def __init__(self, file: Any, numpy_module: str = "numpy.core.multiarray") -> None:
        super().__init__(file, protocol=2)
        self.numpy_module = numpy_module

    def save_py2_str(self, obj: bytes | str) -> None:
        data = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", None) or "builtins"
        name = name or obj.__qualname__
        if module.startswith("numpy._core.multiarray"):
            module = self.numpy_module
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))
        self.memoize(obj)


def py2_pickle(obj: Any, numpy_module: str = "numpy.core.multiarray") -> bytes:
    import io

    buffer = io.BytesIO()
    Python2Pickler(buffer, numpy_module).dump(obj)
    return buffer.getvalue()


def cifar_batch(images: np.ndarray, labels: list[int], name: str) -> dict[bytes, Any]:
    """The dict a real ``data_batch_N`` holds; ``images`` is ``(N, 3, 32, 32)`` uint8."""
    return {
        b"batch_label": f"training batch {name} of 5".encode(),
        b"labels": list(labels),
        b"data": np.ascontiguousarray(images.reshape(len(labels), 3072)),
        b"filenames": [f"image_{name}_{i}.png".encode() for i in range(len(labels))],
    }


def write_cifar10(
    root: Path, rng: np.random.Generator, per_batch: int = 2, numpy_module: str = "numpy.core.multiarray"
) -> dict[str, Any]:
    """``cifar-10-batches-py`` contents under ``root``; returns the images and labels per file."""
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, size=(per_batch, 3, 32, 32), dtype=np.uint8)
        labels = [int(label) for label in rng.integers(0, 10, size=per_batch)]
        (root / name).write_bytes(py2_pickle(cifar_batch(images, labels, name), numpy_module))
        written[name] = (images, labels)
    meta = {
        b"num_cases_per_batch": 10000,
        b"label_names": [name.encode() for name in CIFAR_LABEL_NAMES],
        b"num_vis": 3072,
    }
    (root / "batches.meta").write_bytes(py2_pickle(meta, numpy_module))
    return written


CIFAR_LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class Reducing:
    """An object that pickles as an arbitrary ``(callable, args[, state])``: for hostile pickles."""

    def __init__(self, *reduced: Any) -> None:
        self.reduced = reduced

    def __reduce__(self) -> tuple[Any, ...]:
        return self.reduced


# --- text datasets ----------------------------------------------------------------------


def write_aclimdb(root: Path, reviews: dict[str, dict[str, str]]) -> None:
    """``reviews[split/polarity][filename] = text`` under an ``aclImdb`` folder."""
    for folder, files in reviews.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (root / folder / name).write_text(text, encoding="utf-8")


def write_ag_news(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """AG_NEWS rows as the original: no header, every field double-quoted, CRLF-free."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def squad_document() -> dict[str, Any]:
    """A two-article SQuAD v1.1 document; every answer_start is correct."""
    context_1 = "Super Bowl 50 was won by the Denver Broncos, who beat the Carolina Panthers."
    context_2 = "The Normans gave their name to Normandy, a region in France."
    return {
        "version": "1.1",
        "data": [
            {
                "title": "Super_Bowl_50",
                "paragraphs": [
                    {
                        "context": context_1,
                        "qas": [
                            {
                                "id": "q1",
                                "question": "Who won Super Bowl 50?",
                                "answers": [
                                    {"text": "Denver Broncos", "answer_start": context_1.index("Denver")},
                                    {"text": "the Denver Broncos", "answer_start": context_1.index("the Denver")},
                                ],
                            },
                            {
                                "id": "q2",
                                "question": "Who lost?",
                                "answers": [{"text": "Carolina Panthers", "answer_start": context_1.index("Carolina")}],
                            },
                        ],
                    }
                ],
            },
            {
                "title": "Normans",
                "paragraphs": [
                    {
                        "context": context_2,
                        "qas": [
                            {
                                "id": "q3",
                                "question": "In what country is Normandy?",
                                "answers": [{"text": "France", "answer_start": context_2.index("France")}],
                            }
                        ],
                    }
                ],
            },
        ],
    }


def write_json(path: Path, document: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


# --- PASCAL VOC -------------------------------------------------------------------------


def voc_palette() -> list[int]:
    """The 256-entry VOC colour map (bit-interleaved class index, as in VOCdevkit's VOClabelcolormap)."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        value = index
        for shift in range(7, -1, -1):
            red |= ((value >> 0) & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        palette += [red, green, blue]
    return palette


def write_palette_png(path: Path, values: np.ndarray) -> Path:
    """A "P" mode PNG whose pixel values are ``values`` (uint8 class indices)."""
    image = Image.frombytes("P", (values.shape[1], values.shape[0]), np.ascontiguousarray(values, np.uint8).tobytes())
    image.putpalette(voc_palette())
    image.save(path, format="PNG")
    return path


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int, height: int) -> bytes:
    """A valid-looking palette PNG whose IHDR declares ``width x height``, with one tiny IDAT."""
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"PLTE", bytes(voc_palette()))
        + png_chunk(b"IDAT", zlib.compress(bytes(width + 1)))
        + png_chunk(b"IEND", b"")
    )


def write_voc(
    root: Path, masks: dict[str, np.ndarray], splits: dict[str, list[str]], colour_of: dict[str, tuple[int, int, int]]
) -> None:
    """A ``VOCdevkit/VOC2012`` tree: solid-colour JPEGs, palette masks and split lists."""
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for image_id, values in masks.items():
        height, width = values.shape
        Image.new("RGB", (width, height), colour_of[image_id]).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        write_palette_png(root / "SegmentationClass" / f"{image_id}.png", values)
    for split, ids in splits.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
