"""Memory measurements of a run: peak host RAM, peak CUDA memory, optimizer state size.

Kept apart from the training loop so the loop reads as training; every function here is
called once per run (or once per epoch), never per step.

Example:
    >>> import torch
    >>> p = torch.nn.Parameter(torch.zeros(10))
    >>> opt = torch.optim.Adam([p])
    >>> p.grad = torch.ones(10)
    >>> opt.step()
    >>> optimizer_state_bytes(opt)  # exp_avg + exp_avg_sq (40 B each) + step (4 B)
    84
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterable
from typing import Any

import torch

# ru_maxrss is in kilobytes on Linux and in bytes on macOS.
_MAXRSS_UNIT_BYTES = 1 if sys.platform == "darwin" else 1024
_MIB = 1024.0 * 1024.0


def peak_ram_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    This is the process-wide high-water mark (``getrusage``): a run executed after a
    bigger one in the same process reports the bigger peak. Pool workers each measure
    their own process.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT_BYTES / _MIB


def reset_peak_vram(device: torch.device) -> None:
    """Start a fresh CUDA high-water mark for ``device`` (no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_vram_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated on ``device`` since :func:`reset_peak_vram`, in MiB; 0 off CUDA."""
    if device.type != "cuda":
        return 0.0
    return torch.cuda.max_memory_allocated(device) / _MIB


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by every tensor in ``optimizer.state`` (nested dicts and lists included).

    Scalars kept as Python numbers are not counted: they are not what grows with the model.
    """
    return sum(_tensor_bytes(value) for value in optimizer.state.values())


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return _sum_bytes(value.values())
    if isinstance(value, (list, tuple)):
        return _sum_bytes(value)
    return 0


def _sum_bytes(values: Iterable[Any]) -> int:
    return sum(_tensor_bytes(v) for v in values)
