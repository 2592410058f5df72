"""The Hugging Face fallbacks: ``save_to_disk`` and parquet folders under ``<data_dir>/<name>/``, offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradretention.tasks import cifar_tasks
from gradretention.tasks.readers import DatasetFormatError
from gradretention.tasks.registry import get_task

datasets = pytest.importorskip("datasets")


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()


def _images(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _image_split(column: str, images: np.ndarray, labels: list[int]):
    from PIL import Image

    features = datasets.Features({column: datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    rows = {column: [Image.fromarray(a) for a in images], "label": labels}
    return datasets.Dataset.from_dict(rows, features=features)


def test_mnist_from_a_save_to_disk_folder(tmp_path):
    rng = np.random.default_rng(1)
    train, test = _images(rng, 12, (28, 28)), _images(rng, 3, (28, 28))
    saved = datasets.DatasetDict(
        {
            "train": _image_split("image", train, list(range(10)) + [3, 4]),
            "test": _image_split("image", test, [7, 8, 9]),
        }
    )
    saved.save_to_disk(str(tmp_path / "mnist"))
    data = get_task("mnist-logreg").load(0, tmp_path)
    assert data.info["source"].startswith("hf-folder")
    torch.testing.assert_close(data.test.inputs[:, 0], (torch.from_numpy(test).float() / 255 - 0.1307) / 0.3081)
    assert data.test.targets.tolist() == [7, 8, 9] and len(data.train) + len(data.val) == 12


def test_cifar_from_a_hub_style_parquet_folder(tmp_path):
    rng = np.random.default_rng(2)
    train, test = _images(rng, 6, (32, 32, 3)), _images(rng, 2, (32, 32, 3))
    folder = tmp_path / "cifar10" / "plain_text"
    folder.mkdir(parents=True)
    _image_split("img", train, [0, 1, 2, 3, 4, 5]).to_parquet(str(folder / "train-00000-of-00001.parquet"))
    _image_split("img", test, [9, 8]).to_parquet(str(folder / "test-00000-of-00001.parquet"))
    data = get_task("cifar10-cnn").load(0, tmp_path)
    chw = torch.from_numpy(test).permute(0, 3, 1, 2).float() / 255
    mean, std = torch.tensor(cifar_tasks.MEAN).view(1, 3, 1, 1), torch.tensor(cifar_tasks.STD).view(1, 3, 1, 1)
    torch.testing.assert_close(data.test.inputs, (chw - mean) / std)
    assert data.test.targets.tolist() == [9, 8]


def test_hf_images_of_the_wrong_size_are_refused(tmp_path):
    rng = np.random.default_rng(3)
    small = _image_split("img", _images(rng, 2, (16, 16, 3)), [0, 1])
    datasets.DatasetDict({"train": small, "test": small}).save_to_disk(str(tmp_path / "cifar10"))
    with pytest.raises(DatasetFormatError, match=r"split 'train': row 0: expected a 32x32 image, found 16x16"):
        get_task("cifar10-resnet18").load(0, tmp_path)


def _texts(texts: list[str], labels: list[int], names: tuple[str, ...]):
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(names))})
    return datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)


def test_imdb_from_parquet_and_ag_news_from_save_to_disk(tmp_path):
    folder = tmp_path / "imdb" / "plain_text"
    folder.mkdir(parents=True)
    reviews = ["good film", "bad film", "great fun", "awful mess"]
    _texts(reviews, [1, 0, 1, 0], ("neg", "pos")).to_parquet(str(folder / "train-00000-of-00001.parquet"))
    _texts(["good mess"], [1], ("neg", "pos")).to_parquet(str(folder / "test-00000-of-00001.parquet"))
    imdb = get_task("imdb-lstm").load(0, tmp_path)
    vocabulary = imdb.info["vocabulary"]
    assert imdb.test.inputs["input_ids"][0, :2].tolist() == [vocabulary.index("good"), vocabulary.index("mess")]

    names = ("World", "Sports", "Business", "Sci/Tech")
    news = datasets.DatasetDict({"train": _texts(["a", "b", "c", "d"], [0, 1, 2, 3], names),
                                 "test": _texts(["e", "f"], [3, 2], names)})  # fmt: skip
    news.save_to_disk(str(tmp_path / "ag_news"))
    data = get_task("agnews-bert").load(0, tmp_path)
    assert data.num_classes == 4 and data.test.targets.tolist() == [3, 2]


def test_hf_labels_outside_the_class_range_are_refused(tmp_path):
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("int64")})
    split = datasets.Dataset.from_dict({"text": ["x", "y"], "label": [0, 4]}, features=features)
    datasets.DatasetDict({"train": split, "test": split}).save_to_disk(str(tmp_path / "ag_news"))
    with pytest.raises(DatasetFormatError, match=r"ag_news, split 'train': labels must be 0..3, found 4 at row 1"):
        get_task("agnews-bert").load(0, tmp_path)


def test_squad_from_a_save_to_disk_folder(tmp_path):
    context = "Paris is the capital of France."
    rows = {
        "id": ["a", "b", "c"], "title": ["Paris", "Paris", "Rome"],
        "question": ["What is Paris?", "Capital of what?", "Where?"], "context": [context] * 3,
        "answers": [{"text": ["the capital"], "answer_start": [9]}, {"text": ["France"], "answer_start": [24]},
                    {"text": ["Paris"], "answer_start": [0]}],
    }  # fmt: skip
    table = datasets.Dataset.from_dict(rows)
    datasets.DatasetDict({"train": table, "validation": table}).save_to_disk(str(tmp_path / "squad"))
    data = get_task("squad-bert").load(0, tmp_path)
    assert len(data.test) == 3 and len(data.train) + len(data.val) == 3
    targets = data.test.targets
    offsets, ends = targets["offset_mapping"], targets["end_positions"]
    starts = targets["start_positions"]
    spans = [context[int(offsets[n, starts[n], 0]) : int(offsets[n, ends[n], 1])] for n in range(3)]
    assert spans == ["the capital", "France", "Paris"]
