"""Decoded and tokenised data are cached beside the data: written atomically, rebuilt when a file changes."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from gradretention.tasks import datacache, mnist_tasks, text_tasks
from gradretention.tasks.datacache import CACHE_DIRNAME, carve_validation, read_cache, write_cache
from gradretention.tasks.registry import get_task

from ..readers.realformats import write_mnist


@pytest.fixture
def mnist_dir(tmp_path):
    write_mnist(tmp_path / "mnist", np.random.default_rng(0), {"train": 12, "test": 4})
    return tmp_path


def _cache_files(root):
    folder = root / CACHE_DIRNAME
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def _refuse_to_decode(root):
    raise AssertionError(f"decoded {root} again although the cache holds it")


def test_first_load_writes_one_cache_file_and_the_next_reads_it(mnist_dir, fresh_memory, monkeypatch):
    first = get_task("mnist-logreg").load(0, mnist_dir)
    files = _cache_files(mnist_dir)
    assert len(files) == 1 and files[0].startswith("mnist-uint8-v1-") and files[0].endswith(".pt")
    datacache._MEMORY.clear()
    monkeypatch.setattr(mnist_tasks, "mnist_from_files", _refuse_to_decode)
    second = get_task("mnist-logreg").load(0, mnist_dir)
    assert torch.equal(first.train.inputs, second.train.inputs) and torch.equal(first.test.targets, second.test.targets)


def test_a_changed_data_file_rebuilds_the_cache(mnist_dir, fresh_memory):
    get_task("mnist-mlp").load(0, mnist_dir)
    write_mnist(mnist_dir / "mnist", np.random.default_rng(1), {"train": 12, "test": 5})
    data = get_task("mnist-mlp").load(0, mnist_dir)
    assert len(data.test) == 5
    assert len(_cache_files(mnist_dir)) == 2


def test_text_caches_depend_on_the_token_budget(data_dir, monkeypatch, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data_dir / "aclImdb", root / "aclImdb")
    short = get_task("imdb-lstm").load(0, root)
    monkeypatch.setenv("GRADRETENTION_MAX_LEN", "8")
    shorter = get_task("imdb-lstm").load(0, root)
    assert short.train.inputs["input_ids"].shape[1] == 32 and shorter.train.inputs["input_ids"].shape[1] == 8
    names = _cache_files(root)
    assert any("len32" in name for name in names) and any("len8" in name for name in names)


def test_a_torn_cache_file_is_rebuilt_with_a_warning(mnist_dir, fresh_memory):
    expected = get_task("mnist-logreg").load(0, mnist_dir)
    (cache,) = (mnist_dir / CACHE_DIRNAME).iterdir()
    cache.write_bytes(cache.read_bytes()[:100])
    datacache._MEMORY.clear()
    with pytest.warns(UserWarning, match="ignoring unreadable data cache"):
        again = get_task("mnist-logreg").load(0, mnist_dir)
    assert torch.equal(expected.test.inputs, again.test.inputs)
    assert read_cache(cache) is not None  # rewritten whole


def test_cache_files_refuse_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "gradretention.datacache", "version": 1, "payload": {"x": np.int8}}, path)
    with pytest.warns(UserWarning, match="ignoring unreadable data cache"):
        assert read_cache(path) is None


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_data_dir_costs_only_the_cache(mnist_dir, fresh_memory):
    (mnist_dir / CACHE_DIRNAME).mkdir()
    (mnist_dir / CACHE_DIRNAME).chmod(0o500)
    try:
        with pytest.warns(UserWarning, match="cannot cache decoded data"):
            data = get_task("mnist-logreg").load(0, mnist_dir)
        assert len(data.test) == 4
    finally:
        (mnist_dir / CACHE_DIRNAME).chmod(0o700)


def test_write_cache_reports_an_unusable_folder_and_leaves_no_temporary_files(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="cannot cache decoded data"):
        assert write_cache(blocker / "sub" / "x.pt", {"a": torch.zeros(1)}) is False
    assert write_cache(tmp_path / "cache" / "x.pt", {"a": torch.arange(3)}) is True
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["x.pt"]
    assert torch.equal(read_cache(tmp_path / "cache" / "x.pt")["a"], torch.arange(3))


def test_carve_validation_is_seeded_disjoint_and_complete():
    train, val = carve_validation(50, 0.1, seed=7)
    again_train, again_val = carve_validation(50, 0.1, seed=7)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    assert len(val) == 5 and sorted(torch.cat([train, val]).tolist()) == list(range(50))
    assert not torch.equal(val, carve_validation(50, 0.1, seed=8)[1])
    assert [len(part) for part in carve_validation(2, 0.01, 0)] == [1, 1]  # both parts keep one example


@pytest.mark.parametrize(("n", "fraction", "message"), [
    (1, 0.1, "need at least 2 training examples to carve a validation split, got 1"),
    (10, 0.0, r"validation fraction must be in \(0, 1\), got 0.0"),
    (10, 1.0, r"validation fraction must be in \(0, 1\), got 1.0"),
])  # fmt: skip
def test_carve_validation_refuses_bad_arguments(n, fraction, message):
    with pytest.raises(ValueError, match=message):
        carve_validation(n, fraction, 0)


def test_bert_caches_are_keyed_by_the_tokenizer_content(data_dir, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data_dir / "ag_news", root / "ag_news")
    get_task("agnews-bert").load(0, root)
    copy = tmp_path / "model-copy"
    # Tokenising needs no weights: copy the folder without its 90 MB safetensors file.
    shutil.copytree(text_tasks.model_path(), copy, ignore=shutil.ignore_patterns("*.safetensors"))
    text_tasks.set_model_path(copy)
    try:
        same = get_task("agnews-bert").load(0, root)
        assert same.info["model_path"] == str(copy)
        assert len([name for name in _cache_files(root) if name.startswith("ag_news-bert-len32-")]) == 1
        config = copy / "tokenizer_config.json"
        config.write_text(config.read_text().replace('"do_lower_case": true', '"do_lower_case": false'))
        datacache.clear_memory()
        cased = get_task("agnews-bert").load(0, root)
    finally:
        text_tasks.set_model_path(None)
    assert len([name for name in _cache_files(root) if name.startswith("ag_news-bert-len32-")]) == 2
    assert not torch.equal(cased.train.inputs["input_ids"], same.train.inputs["input_ids"])


def test_every_real_task_load_frees_its_memory_with_cache_clear(mnist_dir):
    from gradretention.tasks.data_report import task_datasets

    get_task("mnist-cnn").load(0, mnist_dir)
    assert datacache._MEMORY
    for name in task_datasets():
        get_task(name).load.cache_clear()
    assert not datacache._MEMORY
