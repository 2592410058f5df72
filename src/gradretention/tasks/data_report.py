"""``gradretention data``: which real datasets are found, which tasks use them, and what is looked for.

One block per dataset: ``found`` with the folder its tasks will read (original files, a
system package's folder or a Hugging Face folder), or ``missing`` followed by every path
looked for: the files of the primary layout, the alternative layouts, the system
package's install command (Fashion-MNIST: ``apt-get install dataset-fashion-mnist``) and
the Hugging Face folder. The tasks that read the dataset are listed on its line. The BERT
tasks' encoder folder is reported once at the end.

Example:
    >>> data_main(["--data-dir", "/tmp/empty"])  # doctest: +SKIP
    Data directory: /tmp/empty (from --data-dir)
    MNIST          missing  (mnist-logreg, mnist-mlp, mnist-cnn)
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
from gradretention.tasks.readers.locate import apt_command, dataset_source, find_dataset, locate_data_dir

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


def dataset_tasks() -> dict[str, list[str]]:
    """Dataset name -> the tasks that read it, both in module order."""
    grouped: dict[str, list[str]] = {}
    for task, dataset in task_datasets().items():
        grouped.setdefault(dataset, []).append(task)
    return grouped


def dataset_status(dataset: str, root: Path) -> tuple[str, str]:
    """``("found", where)`` or ``("missing", "")`` for ``dataset`` under the data directory ``root``.

    Original files are also looked for where a system package installs them (see
    :func:`~gradretention.tasks.readers.locate.find_dataset`).
    """
    source = dataset_source(dataset)
    try:
        folder = find_dataset(dataset, root)
    except FileNotFoundError:
        folder = None
    if folder is not None:
        installed = folder in source.system_folders()
        return "found", f"{folder} ({f'installed by {source.apt_package}' if installed else 'original files'})"
    if source.hub_id is not None:
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
    if source.apt_package is not None:
        places = " or ".join(f"{folder}/" for folder in source.system_folders())
        lines.append(f"or: {apt_command(dataset)}  (installs it into {places}, found there)")
    if source.hub_id is not None:
        lines.append(f"or: a Hugging Face dataset in {root / dataset}/ (save_to_disk or parquet)")
        lines.append(f"or: --download (fetches '{source.hub_id}')")
    else:
        lines.append("(no Hugging Face copy: --download does not apply)")
    lines.append(f"from: {source.origin}")
    return lines


def print_report(data_dir: str | None, stream: TextIO) -> int:
    """Print the report for ``data_dir``, one block per dataset; returns how many tasks miss their data."""
    root, origin = locate_data_dir(data_dir)
    print(f"Data directory: {root} (from {origin})", file=stream)
    missing = 0
    for dataset, tasks in dataset_tasks().items():
        status, where = dataset_status(dataset, root)
        title = dataset_source(dataset).title
        print(f"{title:<16} {status:<8} {where + '  ' if where else ''}({', '.join(tasks)})", file=stream)
        if status == "missing":
            missing += len(tasks)
            for line in expected_paths(dataset, root):
                print(f"    {line}", file=stream)
    encoder_tasks = [task for task in _ENCODER_TASKS if task in task_datasets()]
    if encoder_tasks:
        print(f"Encoder of {', '.join(encoder_tasks)}: {_encoder_status()}", file=stream)
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
    parser = argparse.ArgumentParser(prog="gradretention data", description=__doc__.split("\n\n")[0].replace("``", ""))
    parser.add_argument("--data-dir", help="data folder (default: $GRADRETENTION_DATA, else the HF datasets cache)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    missing = print_report(args.data_dir, sys.stdout)
    total = len(task_datasets())
    print(f"{total - missing} of {total} tasks have their data.", file=sys.stdout)
    return EXIT_OK
