"""Tiny data folders in every real format the tasks read, and test-wide settings.

One session-wide data directory holds all seven datasets in their original layouts, small
enough that every task trains a few steps on it in well under a second (the BERT tasks
excepted: they load the shipped MiniLM). Text tasks are capped at 32 tokens and every
Hugging Face access is offline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradretention.tasks import datacache

from ..readers.realformats import (
    squad_document,
    write_aclimdb,
    write_ag_news,
    write_cifar10,
    write_json,
    write_mnist,
    write_voc,
)

MAX_LEN = 32
VOC_TRAIN = ("2007_000032", "2007_000039", "2007_000063", "2007_000068", "2007_000121")
VOC_VAL = ("2007_000033", "2007_000042")


@pytest.fixture(autouse=True)
def _offline_short_texts(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("GRADRETENTION_MAX_LEN", str(MAX_LEN))
    for name in ("GRADRETENTION_DATA", "GRADRETENTION_DOWNLOAD", "GRADRETENTION_MODEL_PATH"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fresh_memory():
    """Forget the payloads held in this process, so a load goes to the disk cache or the files."""
    datacache._MEMORY.clear()
    yield
    datacache._MEMORY.clear()


def write_reviews(root: Path) -> None:
    """An ``aclImdb`` tree: 4 positive and 4 negative reviews per split."""
    reviews = {}
    for split in ("train", "test"):
        positive = {f"{i}_{7 + i % 4}.txt": f"A great film, {split} number {i}. Loved it!" for i in range(4)}
        negative = {f"{i}_{1 + i % 4}.txt": f"An awful film<br />{split} {i}; hated it." for i in range(4)}
        reviews[f"{split}/pos"], reviews[f"{split}/neg"] = positive, negative
    reviews["train/pos"]["9_10.txt"] = "trainonlyword appears in training"
    reviews["test/neg"]["9_1.txt"] = "testonlyword appears in testing"
    write_aclimdb(root / "aclImdb", reviews)


def write_news(root: Path) -> None:
    """AG_NEWS ``train.csv`` / ``test.csv``: 12 and 8 rows over the 4 classes, commas and backslashes."""
    for split, rows in (("train", 12), ("test", 8)):
        write_ag_news(
            root / "ag_news" / f"{split}.csv",
            [(str(i % 4 + 1), f"Headline {i}, {split}", f"Body of story {i}\\with a break") for i in range(rows)],
        )


def voc_masks(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """20x24 masks with classes 0-20 in blocks and a 255 border."""
    masks = {}
    for image_id in VOC_TRAIN + VOC_VAL:
        mask = np.zeros((20, 24), dtype=np.uint8)
        mask[4:16, 6:18] = rng.integers(1, 21)
        mask[3, :] = 255
        masks[image_id] = mask
    return masks


def write_all(root: Path) -> Path:
    """Every dataset under ``root`` in its original layout; returns ``root``."""
    rng = np.random.default_rng(5)
    write_mnist(root / "mnist", rng, {"train": 24, "test": 8}, gz=True)
    write_mnist(root / "fashion-mnist", rng, {"train": 24, "test": 8}, gz=True)
    write_cifar10(root / "cifar-10-batches-py", rng, per_batch=3)
    write_reviews(root)
    write_news(root)
    document = squad_document()
    write_json(root / "squad" / "train-v1.1.json", document)
    write_json(root / "squad" / "dev-v1.1.json", document)
    colours = {image_id: tuple(int(c) for c in rng.integers(0, 256, 3)) for image_id in VOC_TRAIN + VOC_VAL}
    write_voc(root / "VOCdevkit" / "VOC2012", voc_masks(rng), {"train": list(VOC_TRAIN), "val": list(VOC_VAL)}, colours)
    return root


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """The shared tiny data folder (tests that modify data make their own)."""
    return write_all(tmp_path_factory.mktemp("real-data"))
