"""A run without its data fails before training, saying exactly what to put where."""

from __future__ import annotations

import numpy as np
import pytest

from gradretention.bench.results import RunConfig
from gradretention.bench.runner import train
from gradretention.tasks import datacache, text_tasks
from gradretention.tasks.data_report import task_datasets
from gradretention.tasks.readers import DatasetFormatError, required_files
from gradretention.tasks.registry import get_task

from ..readers.realformats import write_mnist


@pytest.mark.parametrize("name", sorted(task_datasets()))
def test_missing_data_raises_file_not_found_listing_every_file(name, tmp_path):
    dataset = task_datasets()[name]
    with pytest.raises(FileNotFoundError) as caught:
        get_task(name).load(0, tmp_path)
    message = str(caught.value)
    assert f"not found in the data directory {tmp_path} (from --data-dir)" in message
    for relative in required_files(dataset):
        assert f"{tmp_path}/{relative}" in message


def test_the_runner_refuses_a_run_without_data(tmp_path):
    config = RunConfig(task="cifar10-resnet18", optimizer="sgd", max_steps=1, epochs=None)
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py/data_batch_1"):
        train(config, data_dir=tmp_path)


def test_the_environment_data_dir_is_named_in_the_message(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADRETENTION_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"\(from \$GRADRETENTION_DATA\)") as caught:
        get_task("squad-bert").load(0, None)
    assert f"{tmp_path}/squad/train-v1.1.json" in str(caught.value)


def test_download_does_not_apply_to_voc(tmp_path):
    datacache.set_download(True)
    try:
        assert datacache.download_enabled()
        with pytest.raises(FileNotFoundError, match="no Hugging Face copy this tool can fetch"):
            get_task("voc-unet").load(0, tmp_path)
    finally:
        datacache.set_download(False)
    assert not datacache.download_enabled()


def test_a_partial_layout_names_what_is_still_missing(tmp_path):
    write_mnist(tmp_path / "mnist", np.random.default_rng(0), {"train": 4, "test": 2})
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="Still missing there: t10k-labels-idx1-ubyte"):
        get_task("mnist-mlp").load(0, tmp_path)


def test_a_corrupt_file_is_a_format_error_naming_it(tmp_path):
    write_mnist(tmp_path / "mnist", np.random.default_rng(0), {"train": 4, "test": 2})
    bad = tmp_path / "mnist" / "train-labels-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x03" + bad.read_bytes()[4:])  # the images magic in a labels file
    with pytest.raises(DatasetFormatError, match=str(bad)):
        get_task("mnist-logreg").load(0, tmp_path)


def test_a_missing_encoder_folder_is_named(data_dir, tmp_path):
    text_tasks.set_model_path(tmp_path / "no-model")
    try:
        assert text_tasks.model_path() == tmp_path / "no-model"
        with pytest.raises(FileNotFoundError, match="no-model.*--model-path"):
            get_task("agnews-bert").load(0, data_dir)
        with pytest.raises(FileNotFoundError, match="no-model"):
            get_task("squad-bert").build_model(2)
    finally:
        text_tasks.set_model_path(None)


def test_bad_max_length_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="max length must be an int >= 2, got 1"):
        text_tasks.set_max_length(1)
    monkeypatch.setenv("GRADRETENTION_MAX_LEN", "lots")
    with pytest.raises(ValueError, match=r"GRADRETENTION_MAX_LEN must be an int >= 2, got 'lots'"):
        text_tasks.max_length(128)
