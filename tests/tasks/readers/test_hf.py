"""Hugging Face fallbacks: save_to_disk and Hub-style parquet folders, read offline."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from gradretention.tasks.readers import DatasetFormatError, import_datasets, load_hf_dataset, load_local_hf, split_columns
from gradretention.tasks.readers.hf import hf_folder_kind, parquet_splits

from .realformats import write_mnist

datasets = pytest.importorskip("datasets")


@pytest.fixture(autouse=True)
def quiet_progress_bars():
    datasets.disable_progress_bars()


def _labelled(texts, labels, names=("neg", "pos")):
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(names))})
    return datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)


def test_save_to_disk_folder_is_loaded(tmp_path):
    saved = datasets.DatasetDict({"train": _labelled(["good", "bad"], [1, 0]), "test": _labelled(["fine"], [1])})
    saved.save_to_disk(str(tmp_path / "imdb"))
    loaded = load_hf_dataset("imdb", tmp_path)
    assert sorted(loaded) == ["test", "train"]
    assert split_columns(loaded, "train", ["text", "label"]) == {"text": ["good", "bad"], "label": [1, 0]}
    assert loaded["test"].features["label"].names == ["neg", "pos"]


def test_single_saved_dataset_becomes_one_split(tmp_path):
    _labelled(["only"], [0]).save_to_disk(str(tmp_path / "saved"))
    loaded = load_local_hf(tmp_path / "saved")
    assert list(loaded) == ["train"] and loaded["train"]["text"] == ["only"]


def test_hub_style_parquet_folder_is_loaded_with_its_features(tmp_path):
    folder = tmp_path / "ag_news" / "plain_text"
    folder.mkdir(parents=True)
    names = ("World", "Sports", "Business", "Sci/Tech")
    _labelled(["a", "b", "c"], [0, 3, 2], names).to_parquet(str(folder / "train-00000-of-00002.parquet"))
    _labelled(["d"], [1], names).to_parquet(str(folder / "train-00001-of-00002.parquet"))
    _labelled(["e"], [2], names).to_parquet(str(folder / "test-00000-of-00001.parquet"))
    assert hf_folder_kind(tmp_path / "ag_news") == "parquet"
    loaded = load_hf_dataset("ag_news", tmp_path)
    assert split_columns(loaded, "train", ["text", "label"]) == {"text": ["a", "b", "c", "d"], "label": [0, 3, 2, 1]}
    assert loaded["test"]["text"] == ["e"]
    assert loaded["train"].features["label"].names == list(names)  # from the parquet schema metadata


def test_split_folders_name_the_split(tmp_path):
    for split in ("train", "validation"):
        (tmp_path / "data" / split).mkdir(parents=True)
        _labelled([split], [0]).to_parquet(str(tmp_path / "data" / split / "part-0.parquet"))
    assert {split: [p.name for p in paths] for split, paths in parquet_splits(tmp_path).items()} == {
        "train": ["part-0.parquet"],
        "validation": ["part-0.parquet"],
    }


def test_two_configurations_mixed_are_refused(tmp_path):
    for config in ("plain_text", "other"):
        (tmp_path / config).mkdir()
        _labelled(["x"], [0]).to_parquet(str(tmp_path / config / "train-00000-of-00001.parquet"))
    with pytest.raises(DatasetFormatError, match="parquet files of split 'train' sit in several folders"):
        load_local_hf(tmp_path)


def test_corrupt_parquet_is_refused(tmp_path):
    (tmp_path / "squad").mkdir()
    (tmp_path / "squad" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DatasetFormatError, match="unreadable parquet file"):
        load_hf_dataset("squad", tmp_path)


def test_raw_format_folder_is_not_mistaken_for_hf(tmp_path):
    write_mnist(tmp_path / "mnist", np.random.default_rng(0), {"train": 1, "test": 1})
    assert hf_folder_kind(tmp_path / "mnist") is None
    with pytest.raises(FileNotFoundError, match="No Hugging Face dataset in"):
        load_local_hf(tmp_path / "mnist")


def test_nothing_on_disk_without_download_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        load_hf_dataset("squad", tmp_path)
    message = str(caught.value)
    assert f"{tmp_path}/squad/dev-v1.1.json" in message
    assert "pass --download to fetch 'rajpurkar/squad'" in message


def test_download_of_a_dataset_without_hub_copy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--download is not available for PASCAL VOC 2012"):
        load_hf_dataset("voc", tmp_path, download=True)


def test_missing_datasets_package_gives_the_pip_command(tmp_path, monkeypatch):
    _labelled(["x"], [0]).save_to_disk(str(tmp_path / "imdb"))
    monkeypatch.setitem(sys.modules, "datasets", None)  # what an uninstalled package looks like to import
    with pytest.raises(ImportError, match="pip install datasets"):
        import_datasets()
    with pytest.raises(ImportError, match="pip install datasets"):
        load_hf_dataset("imdb", tmp_path)


def test_split_columns_errors_list_what_exists(tmp_path):
    loaded = datasets.DatasetDict({"train": _labelled(["x"], [0])})
    with pytest.raises(DatasetFormatError, match=r"expected split 'test', found splits \['train'\]"):
        split_columns(loaded, "test", ["text"])
    with pytest.raises(DatasetFormatError, match=r"expected columns \['sentence', 'label'\], found columns \['text', 'label'\]"):
        split_columns(loaded, "train", ["sentence", "label"])
