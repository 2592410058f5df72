"""Data-directory resolution, required files, and the "put these files there" message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradretention.tasks.readers import (
    DATASETS,
    find_dataset,
    read_ag_news,
    read_cifar10,
    read_imdb,
    read_mnist,
    read_squad_split,
    read_voc_segmentation,
    required_files,
    resolve_data_dir,
)

from .realformats import squad_document, write_ag_news, write_aclimdb, write_cifar10, write_json, write_mnist, write_voc


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("GRADRETENTION_DATA", "HF_DATASETS_CACHE", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_data_dir_resolution_order(clean_env, tmp_path):
    home = tmp_path / "home"
    assert resolve_data_dir() == home / ".cache" / "huggingface" / "datasets"
    clean_env.setenv("HF_HOME", str(tmp_path / "hf"))
    assert resolve_data_dir() == tmp_path / "hf" / "datasets"
    clean_env.setenv("HF_DATASETS_CACHE", str(tmp_path / "hfcache"))
    assert resolve_data_dir() == tmp_path / "hfcache"
    clean_env.setenv("GRADRETENTION_DATA", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir("~/data") == home / "data"


def test_required_files_are_the_exact_relative_paths():
    assert required_files("mnist") == [
        "mnist/train-images-idx3-ubyte",
        "mnist/train-labels-idx1-ubyte",
        "mnist/t10k-images-idx3-ubyte",
        "mnist/t10k-labels-idx1-ubyte",
    ]
    assert required_files("cifar10") == [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)] + [
        "cifar-10-batches-py/test_batch",
        "cifar-10-batches-py/batches.meta",
    ]
    assert required_files("imdb") == ["aclImdb/train/pos/", "aclImdb/train/neg/", "aclImdb/test/pos/", "aclImdb/test/neg/"]
    assert required_files("ag_news") == ["ag_news/train.csv", "ag_news/test.csv"]
    assert required_files("squad") == ["squad/train-v1.1.json", "squad/dev-v1.1.json"]
    assert required_files("voc") == [
        "VOCdevkit/VOC2012/JPEGImages/",
        "VOCdevkit/VOC2012/SegmentationClass/",
        "VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt",
        "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt",
    ]


def test_unknown_dataset_suggests_the_closest_name():
    with pytest.raises(ValueError, match=r"Unknown dataset: 'cifar'; valid datasets: mnist, cifar10, .*Did you mean 'cifar10'\?"):
        required_files("cifar")


def _populate(name: str, data_dir: Path, rng: np.random.Generator) -> None:
    if name in ("mnist", "fashion-mnist"):
        write_mnist(data_dir / name, rng, {"train": 2, "test": 1})
    elif name == "cifar10":
        write_cifar10(data_dir / "cifar-10-batches-py", rng, per_batch=1)
    elif name == "imdb":
        reviews = {f"{split}/{polarity}": {f"1_{rating}.txt": "x"} for split in ("train", "test")
                   for polarity, rating in (("pos", 9), ("neg", 1))}  # fmt: skip
        write_aclimdb(data_dir / "aclImdb", reviews)
    elif name == "ag_news":
        for split in ("train", "test"):
            write_ag_news(data_dir / "ag_news" / f"{split}.csv", [("1", "t", "d")])
    elif name == "squad":
        for file in ("train-v1.1.json", "dev-v1.1.json"):
            write_json(data_dir / "squad" / file, squad_document())
    else:
        ids = {"train": ["a_1"], "val": ["a_1"]}
        write_voc(data_dir / "VOCdevkit" / "VOC2012", {"a_1": np.zeros((3, 3), np.uint8)}, ids, {"a_1": (1, 2, 3)})


READ_ONE_SPLIT = {
    "mnist": lambda root: read_mnist(root, "test"),
    "fashion-mnist": lambda root: read_mnist(root, "test"),
    "cifar10": lambda root: read_cifar10(root, "test"),
    "imdb": lambda root: read_imdb(root, "test"),
    "ag_news": lambda root: read_ag_news(root, "test"),
    "squad": lambda root: read_squad_split(root, "dev"),
    "voc": lambda root: read_voc_segmentation(root, "val", size=4),
}


@pytest.mark.parametrize("name", list(DATASETS))
def test_found_folder_is_the_readers_root(tmp_path, rng, name):
    _populate(name, tmp_path, rng)
    root = find_dataset(name, tmp_path)
    assert root == tmp_path / DATASETS[name].layouts[0].folder
    READ_ONE_SPLIT[name](root)  # the reader accepts exactly that folder


@pytest.mark.parametrize("name", list(DATASETS))
def test_missing_dataset_message_says_what_goes_where(clean_env, tmp_path, name):
    with pytest.raises(FileNotFoundError) as caught:
        find_dataset(name, tmp_path)
    message = str(caught.value)
    assert f"in the data directory {tmp_path} (from --data-dir)" in message
    for relative in required_files(name):
        assert f"{tmp_path}/{relative}" in message
    assert "--data-dir or $GRADRETENTION_DATA" in message
    if DATASETS[name].hub_id is None:
        assert "--download does not apply" in message
    else:
        assert f"Or a Hugging Face dataset under {tmp_path / name}/ (a `save_to_disk` folder or parquet files)" in message
        assert f"pass --download to fetch '{DATASETS[name].hub_id}'" in message


def test_message_names_the_env_origin_and_what_is_still_missing(clean_env, tmp_path, rng):
    clean_env.setenv("GRADRETENTION_DATA", str(tmp_path))
    write_mnist(tmp_path / "mnist", rng, {"train": 1, "test": 1})
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError) as caught:
        find_dataset("mnist")
    message = str(caught.value)
    assert "(from $GRADRETENTION_DATA)" in message
    assert "Still missing there: t10k-labels-idx1-ubyte\n" in message
    assert "(or train-images-idx3-ubyte.gz)" in message


def test_alternative_layouts_are_found(tmp_path, rng):
    write_mnist(tmp_path / "MNIST" / "raw", rng, {"train": 1, "test": 1}, gz=True)  # torchvision's layout
    assert find_dataset("mnist", tmp_path) == tmp_path / "MNIST" / "raw"
    write_ag_news(tmp_path / "ag_news_csv" / "train.csv", [("2", "t", "d")])  # the original tarball's folder
    write_ag_news(tmp_path / "ag_news_csv" / "test.csv", [("3", "t", "d")])
    assert find_dataset("ag_news", tmp_path) == tmp_path / "ag_news_csv"
    (tmp_path / "imdb").mkdir()
    for split in ("train", "test"):
        (tmp_path / "imdb" / f"{split}.csv").write_text("text,label\nok,1\n")
    root = find_dataset("imdb", tmp_path)
    assert root == tmp_path / "imdb" and read_imdb(root, "train") == (["ok"], [1])


def test_a_file_where_a_folder_belongs_does_not_count(tmp_path):
    (tmp_path / "aclImdb" / "train").mkdir(parents=True)
    (tmp_path / "aclImdb" / "train" / "pos").write_text("not a folder")
    with pytest.raises(FileNotFoundError, match="IMDB not found"):
        find_dataset("imdb", tmp_path)
