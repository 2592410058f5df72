"""What each task hands the model: checked against the readers and the tokenizer called directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradretention.tasks import cifar_tasks, mnist_tasks, squad_task, voc_task
from gradretention.tasks.models.bert import tokenize_texts
from gradretention.tasks.models.text import UNK_ID
from gradretention.tasks.readers import read_cifar10, read_imdb, read_mnist, read_voc_segmentation
from gradretention.tasks.readers.squad import f1_score
from gradretention.tasks.registry import get_task
from gradretention.tasks.text_tasks import load_tokenizer, model_path

from .conftest import MAX_LEN


def test_mnist_test_images_are_the_idx_pixels_standardised(data_dir):
    images, labels = read_mnist(data_dir / "mnist", "test")
    data = get_task("mnist-cnn").load(0, data_dir)
    expected = (torch.from_numpy(images).float() / 255 - 0.1307) / 0.3081
    assert data.test.inputs.shape == (8, 1, 28, 28) and data.test.inputs.dtype == torch.float32
    torch.testing.assert_close(data.test.inputs[:, 0], expected)
    assert torch.equal(data.test.targets, torch.from_numpy(labels))


def test_cifar_test_images_are_the_pickled_pixels_standardised_per_channel(data_dir):
    images, labels = read_cifar10(data_dir / "cifar-10-batches-py", "test")
    data = get_task("cifar10-vgg16").load(0, data_dir)
    mean, std = torch.tensor(cifar_tasks.MEAN).view(1, 3, 1, 1), torch.tensor(cifar_tasks.STD).view(1, 3, 1, 1)
    torch.testing.assert_close(data.test.inputs, (torch.from_numpy(images).float() / 255 - mean) / std)
    assert torch.equal(data.test.targets, torch.from_numpy(labels))
    assert data.info["normalization"] == {"mean": cifar_tasks.MEAN, "std": cifar_tasks.STD}


def test_cifar_augmentation_flips_and_crops_only_training_batches(data_dir):
    task = get_task("cifar10-cnn")
    data = task.load(0, data_dir)
    batch = data.train.inputs[:4]
    augmented = task.augment(batch, torch.Generator().manual_seed(3))
    again = task.augment(batch, torch.Generator().manual_seed(3))
    assert augmented.shape == batch.shape and torch.equal(augmented, again)
    assert not torch.equal(augmented, batch)
    assert get_task("mnist-cnn").augment is None


def test_lstm_vocabulary_comes_from_the_training_file_only(data_dir):
    data = get_task("imdb-lstm").load(0, data_dir)
    vocabulary = data.info["vocabulary"]
    assert "trainonlyword" in vocabulary and "testonlyword" not in vocabulary
    texts, _ = read_imdb(data_dir / "aclImdb", "test")
    row = texts.index("testonlyword appears in testing")
    ids = data.test.inputs["input_ids"][row]
    # appears / in occur in a training review; testonlyword and testing never do.
    expected = [UNK_ID, vocabulary.index("appears"), vocabulary.index("in"), UNK_ID]
    assert ids[:4].tolist() == expected and int(data.test.inputs["lengths"][row]) == 4
    assert ids.shape == (MAX_LEN,) and int(ids[4:].abs().sum()) == 0


def test_bert_inputs_equal_the_encoders_tokenizer_output(data_dir):
    data = get_task("imdb-bert").load(0, data_dir)
    texts, labels = read_imdb(data_dir / "aclImdb", "test")
    expected = tokenize_texts(load_tokenizer(model_path()), texts, MAX_LEN)
    assert torch.equal(data.test.inputs["input_ids"], expected["input_ids"])
    assert torch.equal(data.test.inputs["attention_mask"], expected["attention_mask"])
    assert data.test.targets.tolist() == labels


def test_voc_masks_are_the_palette_values_resized_with_255_kept(data_dir):
    images, masks = read_voc_segmentation(data_dir / "VOCdevkit" / "VOC2012", "val", voc_task.IMAGE_SIZE)
    data = get_task("voc-unet").load(0, data_dir)
    assert torch.equal(data.test.targets, masks)
    assert data.test.targets.dtype == torch.long and 255 in data.test.targets.unique().tolist()
    mean = torch.tensor(voc_task.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(voc_task.STD).view(1, 3, 1, 1)
    torch.testing.assert_close(data.test.inputs, (images.float() / 255 - mean) / std)


def _one_hot_logits(targets: dict, starts: torch.Tensor, ends: torch.Tensor) -> dict[str, torch.Tensor]:
    length = targets["offset_mapping"].shape[1]
    start_logits = torch.nn.functional.one_hot(starts, length).float() * 10
    end_logits = torch.nn.functional.one_hot(ends, length).float() * 10
    return {"start_logits": start_logits, "end_logits": end_logits}


def test_squad_metrics_score_gold_spans_as_exact_matches(data_dir):
    data = get_task("squad-bert").load(0, data_dir)
    targets = data.test.targets
    assert targets["start_positions"].gt(0).all(), "every tiny answer fits the 32-token window"
    outputs = _one_hot_logits(targets, targets["start_positions"], targets["end_positions"])
    assert squad_task.squad_metrics([outputs], [targets]) == {"exact_match": 1.0, "f1": 1.0}


def test_squad_metrics_give_partial_credit_with_official_normalisation(data_dir):
    data = get_task("squad-bert").load(0, data_dir)
    targets = data.test.targets
    # Predict only the last token of each gold answer: "Broncos" against "Denver Broncos".
    ends = targets["end_positions"]
    outputs = _one_hot_logits(targets, ends, ends)
    offsets = targets["offset_mapping"]
    pairs = zip(targets["reference_key"].tolist(), targets["example_index"].tolist())
    contexts = [squad_task._reference(key, index)[0] for key, index in pairs]
    predicted = [c[int(offsets[n, e, 0]) : int(offsets[n, e, 1])] for n, (c, e) in enumerate(zip(contexts, ends))]
    assert predicted == ["Broncos", "Panthers", "France"]
    # Hand-computed: 'broncos' vs 'denver broncos' -> P=1, R=1/2, F1=2/3; the other two are exact.
    expected_f1 = (2 / 3 + 2 / 3 + 1) / 3
    assert f1_score("Broncos", "the Denver Broncos") == pytest.approx(2 / 3)
    metrics = squad_task.squad_metrics([outputs], [targets])
    assert metrics["exact_match"] == pytest.approx(1 / 3) and metrics["f1"] == pytest.approx(expected_f1)


def test_squad_validation_holds_out_whole_articles(data_dir):
    data = get_task("squad-bert").load(0, data_dir)

    def paragraphs(split):
        keys, indices = split.targets["reference_key"], split.targets["example_index"]
        return {squad_task._reference(int(k), int(i))[0] for k, i in zip(keys, indices)}

    # One paragraph per article in the tiny file: disjoint paragraphs mean disjoint articles.
    assert paragraphs(data.train) and paragraphs(data.val)
    assert paragraphs(data.train).isdisjoint(paragraphs(data.val))


def test_mnist_model_inputs_have_28x28_shape_for_all_three_models(data_dir):
    data = mnist_tasks.load_mnist(0, data_dir)
    for name in ("mnist-logreg", "mnist-mlp", "mnist-cnn"):
        model = get_task(name).build_model(data.num_classes)
        assert model(data.test.inputs).shape == (8, 10)


def test_the_alternative_layouts_load_too(tmp_path):
    # IMDB as two CSVs with a text,label header; MNIST where torchvision puts it (MNIST/raw).
    from ..readers.realformats import write_csv, write_mnist

    (tmp_path / "imdb").mkdir()
    write_csv(tmp_path / "imdb" / "train.csv", ["text", "label"], [["fine film", "pos"], ["dull film", "neg"]])
    write_csv(tmp_path / "imdb" / "test.csv", ["text", "label"], [["fine, not dull", "1"]])
    imdb = get_task("imdb-lstm").load(0, tmp_path)
    assert imdb.info["source"] == f"files: {tmp_path / 'imdb'}"
    vocabulary = imdb.info["vocabulary"]
    # "not" never occurs in the training file.
    assert imdb.test.inputs["input_ids"][0, :3].tolist() == [vocabulary.index("fine"), UNK_ID, vocabulary.index("dull")]
    assert imdb.test.targets.tolist() == [1]
    assert sorted(torch.cat([imdb.train.targets, imdb.val.targets]).tolist()) == [0, 1]

    written = write_mnist(tmp_path / "MNIST" / "raw", np.random.default_rng(0), {"train": 6, "test": 2})
    mnist = get_task("mnist-cnn").load(0, tmp_path)
    assert mnist.info["source"] == f"files: {tmp_path / 'MNIST' / 'raw'}"
    assert mnist.test.targets.tolist() == written["test"][1].tolist()
