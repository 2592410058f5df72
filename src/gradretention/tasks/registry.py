"""The TASKS registry: every benchmark task by name.

Task modules do not import this module; each exposes a module-level
``TASKS: tuple[Task, ...]``, and the registry imports the modules named in
:data:`TASK_MODULES` and registers their tasks. To add tasks, write such a module and
append its dotted name to :data:`TASK_MODULES` (or call :func:`register_task` at run
time, e.g. from a plug-in). Task modules must import cheaply: heavy libraries belong
inside their ``load`` / ``build_model`` functions.

Example:
    >>> get_task("digits-mlp").default_batch_size
    64
"""

from __future__ import annotations

import difflib
import importlib

from gradretention.tasks.base import Task

TASK_MODULES: tuple[str, ...] = (
    "gradretention.tasks.spiral",
    "gradretention.tasks.spiral_nnfs",
    "gradretention.tasks.digits",
    "gradretention.tasks.mnist1d_task",
    "gradretention.tasks.mnist_tasks",
    "gradretention.tasks.cifar_tasks",
    "gradretention.tasks.text_tasks",
    "gradretention.tasks.squad_task",
    "gradretention.tasks.voc_task",
)

TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add ``task`` under ``task.name`` and return it.

    Raises:
        ValueError: if the name is not lowercase, or another task already has it.
    """
    if not task.name or task.name != task.name.lower() or " " in task.name:
        raise ValueError(f"task names are lowercase without spaces, got {task.name!r}")
    existing = TASKS.get(task.name)
    if existing is not None and existing is not task:
        raise ValueError(f"a task named {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def available_tasks() -> list[str]:
    """Sorted names of every registered task."""
    return sorted(TASKS)


def get_task(name: str) -> Task:
    """The task registered as ``name``.

    Raises:
        ValueError: for an unknown name; the message suggests the closest names and
            lists every valid one.
    """
    task = TASKS.get(name)
    if task is not None:
        return task
    valid = available_tasks()
    close = difflib.get_close_matches(str(name), valid, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"Unknown task {name!r}.{hint} Valid tasks: {', '.join(valid)}")


def _register_modules(module_names: tuple[str, ...]) -> None:
    for module_name in module_names:
        module = importlib.import_module(module_name)
        for task in module.TASKS:
            register_task(task)


_register_modules(TASK_MODULES)
