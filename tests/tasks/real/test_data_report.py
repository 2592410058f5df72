"""``gradretention data``: found / missing per dataset with its tasks, and every path it looks for."""

from __future__ import annotations

import pytest

from gradretention.tasks.data_report import data_main, dataset_tasks, task_datasets
from gradretention.tasks.readers import DATASETS, required_files

datasets = pytest.importorskip("datasets")


def _task_lines(output: str) -> dict[str, str]:
    """Task name -> the status line of the dataset it reads, less the title: "found ..." or "missing ..."."""
    lines = {}
    for dataset, tasks in dataset_tasks().items():
        line = next(line for line in output.splitlines() if line.startswith(DATASETS[dataset].title + " "))
        assert line.endswith(f"({', '.join(tasks)})"), line
        lines.update({task: line.removeprefix(DATASETS[dataset].title) for task in tasks})
    return lines


def test_each_dataset_has_one_block_listing_its_tasks(tmp_path, capsys):
    assert data_main(["--data-dir", str(tmp_path)]) == 0
    output = capsys.readouterr().out
    for dataset, tasks in dataset_tasks().items():
        assert sum(line.startswith(DATASETS[dataset].title + " ") for line in output.splitlines()) == 1
        # Each expected path once, not once per task.
        assert output.count(f"{tmp_path}/{required_files(dataset)[0]}") == 1
    assert dataset_tasks()["mnist"] == ["mnist-logreg", "mnist-mlp", "mnist-cnn"]


def test_an_empty_folder_lists_every_task_as_missing_with_the_expected_paths(tmp_path, capsys):
    assert data_main(["--data-dir", str(tmp_path)]) == 0
    output = capsys.readouterr().out
    assert output.startswith(f"Data directory: {tmp_path} (from --data-dir)\n")
    lines = _task_lines(output)
    assert set(lines) == set(task_datasets())
    assert all(line.split()[0] == "missing" for line in lines.values())
    for dataset in set(task_datasets().values()):
        for relative in required_files(dataset):
            assert f"    {tmp_path}/{relative}" in output
    # Alternatives are listed too: gzip names, other layouts, the HF folder and --download.
    assert f"{tmp_path}/mnist/train-images-idx3-ubyte  (or train-images-idx3-ubyte.gz)" in output
    assert f"or: {tmp_path}/imdb/train.csv, {tmp_path}/imdb/test.csv" in output
    assert f"or: a Hugging Face dataset in {tmp_path}/squad/ (save_to_disk or parquet)" in output
    assert "or: --download (fetches 'rajpurkar/squad')" in output
    assert "or: sudo apt-get install dataset-fashion-mnist  (installs it into" in output
    assert output.rstrip().endswith("0 of 14 tasks have their data.")


def test_a_full_folder_reports_every_task_found(data_dir, capsys):
    assert data_main(["--data-dir", str(data_dir)]) == 0
    output = capsys.readouterr().out
    lines = _task_lines(output)
    assert all(line.split()[0] == "found" for line in lines.values()), output
    assert f"{data_dir}/VOCdevkit/VOC2012 (original files)" in lines["voc-unet"]
    assert "Encoder of imdb-bert, agnews-bert, squad-bert: " in output and "(found; --model-path to change)" in output
    assert output.rstrip().endswith("14 of 14 tasks have their data.")


def test_a_hugging_face_folder_counts_as_found(tmp_path, capsys):
    table = datasets.Dataset.from_dict({"text": ["a"], "label": [0]})
    datasets.DatasetDict({"train": table, "test": table}).save_to_disk(str(tmp_path / "ag_news"))
    assert data_main(["--data-dir", str(tmp_path)]) == 0
    line = _task_lines(capsys.readouterr().out)["agnews-bert"]
    assert line.split()[0] == "found" and f"{tmp_path}/ag_news (Hugging Face save_to_disk folder)" in line


def test_the_environment_variable_picks_the_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRADRETENTION_DATA", str(tmp_path))
    assert data_main([]) == 0
    assert f"Data directory: {tmp_path} (from $GRADRETENTION_DATA)" in capsys.readouterr().out


def test_an_unknown_flag_is_a_usage_error(capsys):
    assert data_main(["--data-folder", "x"]) == 2
    assert "unrecognized arguments: --data-folder" in capsys.readouterr().err
