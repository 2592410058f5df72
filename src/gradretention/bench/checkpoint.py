"""Training checkpoints: model and optimizer state, written atomically, read with ``weights_only``.

:func:`save_checkpoint` writes to a temporary file in the target folder and renames it
over the target (``os.replace``), so a crash mid-write leaves the previous checkpoint
whole. :func:`load_checkpoint` reads with ``torch.load(weights_only=True)``: a
checkpoint holds only tensors and plain containers, and a file that asks for anything
else is refused instead of executed.

Besides the two state dicts a checkpoint keeps the epoch, the global torch RNG state
(dropout draws; restored on load, so a resumed run continues identically) and ``extra``:
any plain data (numbers, strings, lists, dicts, tensors), e.g. the run's config and its
data-order generator state (``generator.get_state()``).

Example:
    >>> save_checkpoint(checkpoint_path(out, run_id), model, optimizer, epoch=3,
    ...                 extra={"task": "mnist-cnn", "generator": generator.get_state()})  # doctest: +SKIP
    >>> state = load_checkpoint(checkpoint_path(out, run_id), model, optimizer)  # doctest: +SKIP
    >>> state.epoch, generator.set_state(state.extra["generator"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

FORMAT = "gradretention.checkpoint"
VERSION = 1
CHECKPOINT_DIR = "checkpoints"


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`load_checkpoint` read besides the states it loaded into the objects."""

    path: Path
    epoch: int
    extra: dict[str, Any] = field(default_factory=dict)


def checkpoint_path(out_dir: str | os.PathLike[str], run_id: str) -> Path:
    """Where the run ``run_id`` of a sweep writing to ``out_dir`` keeps its checkpoint."""
    if not run_id or any(char in run_id for char in "/\\") or run_id.startswith("."):
        raise ValueError(f"run_id must be a plain file name such as '3f2a9c0d1e2b4a5c', got {run_id!r}")
    return Path(out_dir) / CHECKPOINT_DIR / f"{run_id}.pt"


def save_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    epoch: int,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the model's and optimizer's state after ``epoch`` to ``path``, atomically.

    Args:
        path: the checkpoint file; its folder is created.
        model: its ``state_dict()`` is saved.
        optimizer: its ``state_dict()`` is saved (``None``: model only).
        epoch: epochs completed.
        extra: plain data to keep alongside (see the module docstring).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``epoch`` is negative.
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
    path = Path(path)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "cuda": _cuda_rng_states()},
        "extra": dict(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(document, stream)
            stream.flush()
            os.fsync(stream.fileno())  # the bytes are on disk before the rename makes them the checkpoint
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = True,
) -> Checkpoint:
    """Load the states in ``path`` into ``model`` (and ``optimizer``) and return the rest.

    Args:
        path: a file written by :func:`save_checkpoint`.
        model: receives the model state (strict: every key must match).
        optimizer: receives the optimizer state; ``None`` skips it.
        restore_rng: put back the global torch (and CUDA) RNG state saved with it.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a gradretention checkpoint, refused by ``weights_only``, saved
            without an optimizer state when one is asked for, or a model that does not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    document = _read(path)
    try:
        model.load_state_dict(document["model"])
    except RuntimeError as error:
        raise ValueError(f"{path}: the model state does not fit {type(model).__name__}: {error}") from error
    if optimizer is not None:
        if document["optimizer"] is None:
            raise ValueError(f"{path}: saved without an optimizer state; pass optimizer=None to load the model only")
        optimizer.load_state_dict(document["optimizer"])
    if restore_rng:
        torch.set_rng_state(document["rng"]["torch"])
        cuda_states = document["rng"].get("cuda") or []
        if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    return Checkpoint(path, int(document["epoch"]), dict(document["extra"]))


def read_checkpoint_extra(path: str | os.PathLike[str]) -> Checkpoint:
    """The epoch and ``extra`` of a checkpoint, without any model (e.g. to find its task first)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    document = _read(path)
    return Checkpoint(path, int(document["epoch"]), dict(document["extra"]))


def _read(path: Path) -> dict[str, Any]:
    try:
        document = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        raise ValueError(f"{path}: not a readable checkpoint (torch.load with weights_only=True: {error})") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gradretention checkpoint (expected format {FORMAT!r})")
    if document.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {document.get('version')!r}, this version reads {VERSION}")
    return document


def _cuda_rng_states() -> list[torch.Tensor]:
    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
