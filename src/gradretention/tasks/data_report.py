"""``gradretention data``: which real-data tasks find their files, and exactly what each looks for.

For every task that reads a real dataset it prints ``found`` with the folder it will
read (original files or a Hugging Face folder), or ``missing`` followed by every path it
looks for: the files of the primary layout, the alternative layouts, and the Hugging
Face folder. The BERT tasks also say which encoder folder they would load.

Example:
    >>> data_main(["--data-dir", "/tmp/empty"])  # doctest: +SKIP
    Data directory: /tmp/empty (from --data-dir)
    mnist-logreg  missing  MNIST
        /tmp/empty/mnist/train-images-idx3-ubyte  (or train-images-idx3-ubyte.gz)
        ...
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from gradretention.tasks.readers.hf import hf_folder_kind
from gradretention.tasks.readers.locate import dataset_source, find_dataset, locate_data_dir

EXIT_OK, EXIT_USAGE = 0, 2
REAL_DATA_MODULES = (
    "gradretention.tasks.mnist_tasks",
    "gradretention.tasks.cifar_tasks",
    "gradretention.tasks.text_tasks",
    "gradretention.tasks.squad_task",
    "gradretention.tasks.voc_task",
)
_ENCODER_TASKS = ("imdb-bert", "agnews-bert", "squad-bert")


def task_datasets() -> dict[str, str]:
    """Task name -> dataset name for every task that reads a real dataset, in module order."""
    mapping: dict[str, str] = {}
    for name in REAL_DATA_MODULES:
        mapping.update(importlib.import_module(name).TASK_DATASETS)
    return mapping


def dataset_status(dataset: str, root: Path) -> tuple[str, str]:
    """``("found", where)`` or ``("missing", "")`` for ``dataset`` under the data directory ``root``."""
    try:
        return "found", f"{find_dataset(dataset, root)} (original files)"
    except FileNotFoundError:
        pass
    if dataset_source(dataset).hub_id is not None:
        kind = hf_folder_kind(root / dataset)
        if kind is not None:
            return "found", f"{root / dataset} (Hugging Face {kind} folder)"
    return "missing", ""


def expected_paths(dataset: str, root: Path) -> list[str]:
    """Every path the task looks for, one line each, primary layout first."""
    source = dataset_source(dataset)
    primary, *others = source.layouts
    lines = []
    for names in primary.entries:
        alternatives = f"  (or {', '.join(names[1:])})" if len(names) > 1 else ""
        # Joined as text: Path would drop the trailing "/" that marks a folder.
        lines.append(f"{root / primary.folder}/{names[0]}{alternatives}")
    for layout in others:
        lines.append("or: " + ", ".join(f"{root / layout.folder}/{names[0]}" for names in layout.entries))
    if source.hub_id is not None:
        lines.append(f"or: a Hugging Face dataset in {root / dataset}/ (save_to_disk or parquet)")
        lines.append(f"or: --download (fetches '{source.hub_id}')")
    else:
        lines.append("(no Hugging Face copy: --download does not apply)")
    lines.append(f"from: {source.origin}")
    return lines


def print_report(data_dir: str | None, stream: TextIO) -> int:
    """Print the report for ``data_dir``; returns how many tasks miss their data."""
    root, origin = locate_data_dir(data_dir)
    print(f"Data directory: {root} (from {origin})", file=stream)
    statuses: dict[str, tuple[str, str]] = {}
    missing = 0
    for task, dataset in task_datasets().items():
        if dataset not in statuses:
            statuses[dataset] = dataset_status(dataset, root)
        status, where = statuses[dataset]
        title = dataset_source(dataset).title
        print(f"{task:<17} {status:<8} {title}{': ' + where if where else ''}", file=stream)
        if status == "missing":
            missing += 1
            for line in expected_paths(dataset, root):
                print(f"    {line}", file=stream)
        if task in _ENCODER_TASKS:
            print(f"    encoder: {_encoder_status()}", file=stream)
    return missing


def _encoder_status() -> str:
    from gradretention.tasks.text_tasks import model_path

    try:
        folder = model_path()
    except FileNotFoundError as error:
        return f"missing ({error})"
    state = "found" if (folder / "config.json").is_file() else "missing config.json"
    return f"{folder} ({state}; --model-path to change)"


def data_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gradretention data [--data-dir D]``; 0 whether or not data is missing, 2 on bad usage."""
    parser = argparse.ArgumentParser(prog="gradretention data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="data folder (default: $GRADRETENTION_DATA, else the HF datasets cache)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    missing = print_report(args.data_dir, sys.stdout)
    total = len(task_datasets())
    print(f"{total - missing} of {total} tasks have their data.", file=sys.stdout)
    return EXIT_OK
