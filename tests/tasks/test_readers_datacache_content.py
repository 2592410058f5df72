"""The data cache is keyed on the content of what the readers read, not on paths, sizes or mtimes."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from gradretention.tasks import datacache, mnist_tasks
from gradretention.tasks.datacache import CACHE_DIRNAME, locate_source
from gradretention.tasks.fingerprint import file_digest, files_fingerprint
from gradretention.tasks.registry import get_task

from .readers.realformats import idx_bytes, write_aclimdb, write_mnist


@pytest.fixture
def mnist_root(tmp_path, monkeypatch):
    for name in ("GRADRETENTION_DATA", "GRADRETENTION_DOWNLOAD"):
        monkeypatch.delenv(name, raising=False)
    write_mnist(tmp_path / "mnist", np.random.default_rng(0), {"train": 12, "test": 4})
    datacache.clear_memory()
    yield tmp_path
    datacache.clear_memory()


def _refuse_to_decode(root):
    raise AssertionError(f"decoded {root} again although its content did not change")


def test_a_file_replaced_with_the_same_size_and_mtime_rebuilds_the_cache(mnist_root):
    path = mnist_root / "mnist" / "t10k-images-idx3-ubyte"
    first = get_task("mnist-mlp").load(0, mnist_root)
    stat = path.stat()
    other = np.random.default_rng(1).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    path.write_bytes(idx_bytes(other))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # what cp -p, tar x and rsync -t do
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    datacache.clear_memory()
    second = get_task("mnist-mlp").load(0, mnist_root)
    assert not torch.equal(first.test.inputs, second.test.inputs)
    assert len(list((mnist_root / CACHE_DIRNAME).iterdir())) == 2


def test_a_touched_but_unchanged_file_reuses_the_cache(mnist_root, monkeypatch):
    first = get_task("mnist-mlp").load(0, mnist_root)
    os.utime(mnist_root / "mnist" / "train-images-idx3-ubyte")  # new mtime, same bytes
    datacache.clear_memory()
    monkeypatch.setattr(mnist_tasks, "mnist_from_files", _refuse_to_decode)
    second = get_task("mnist-mlp").load(0, mnist_root)
    assert torch.equal(first.train.inputs, second.train.inputs)


def test_a_moved_data_directory_keeps_its_key(mnist_root, tmp_path):
    before = locate_source("mnist", mnist_root).fingerprint
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (mnist_root / "mnist").rename(moved / "mnist")
    assert locate_source("mnist", moved).fingerprint == before


def test_files_no_reader_reads_do_not_change_the_key(tmp_path):
    reviews = {f"{split}/{polarity}": {"0_1.txt" if polarity == "neg" else "0_9.txt": f"{split} {polarity}"}
               for split in ("train", "test") for polarity in ("neg", "pos")}  # fmt: skip
    write_aclimdb(tmp_path / "aclImdb", reviews)
    before = locate_source("imdb", tmp_path).fingerprint
    write_aclimdb(tmp_path / "aclImdb", {"train/unsup": {"0_0.txt": "unlabelled"}})
    (tmp_path / "aclImdb" / "README").write_text("notes")
    assert locate_source("imdb", tmp_path).fingerprint == before
    (tmp_path / "aclImdb" / "test" / "pos" / "0_9.txt").write_text("test pos, edited")
    assert locate_source("imdb", tmp_path).fingerprint != before


def test_a_review_moved_between_folders_changes_the_key(tmp_path):
    write_aclimdb(tmp_path / "aclImdb", {"train/neg": {"0_4.txt": "meh"}, "train/pos": {"1_7.txt": "ok"},
                                         "test/neg": {}, "test/pos": {}})  # fmt: skip
    before = locate_source("imdb", tmp_path).fingerprint
    (tmp_path / "aclImdb" / "train" / "pos" / "1_7.txt").rename(tmp_path / "aclImdb" / "train" / "neg" / "1_7.txt")
    assert locate_source("imdb", tmp_path).fingerprint != before


def test_the_digest_is_the_sha256_of_the_content_and_follows_rewrites(tmp_path):
    import hashlib

    path = tmp_path / "labels"
    path.write_bytes(b"abc")
    assert file_digest(str(path)) == hashlib.sha256(b"abc").hexdigest()
    path.write_bytes(b"abd")
    assert file_digest(str(path)) == hashlib.sha256(b"abd").hexdigest()
    renamed = tmp_path / "other"
    renamed.write_bytes(b"abd")
    assert files_fingerprint([path]) != files_fingerprint([renamed])  # names are part of the key
