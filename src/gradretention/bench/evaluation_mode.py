"""Evaluate the weights an optimizer means: Schedule-Free's averaged iterate, with its BN statistics.

Schedule-Free optimizers (Defazio et al. 2024) take gradients at an interpolation ``y`` of
their base sequence ``z`` and its running average ``x``, and it is ``x`` that should be
evaluated or saved. Their contract is ``optimizer.train()`` before training steps and
``optimizer.eval()`` before evaluation, which swaps ``x`` into the parameters. A model with
batch norm needs one more step, as the authors' README recommends: its running statistics
were gathered at ``y``, so they are recomputed at ``x`` on a few training batches before the
evaluation. Optimizers without ``train``/``eval`` methods pass through untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch

from gradretention.optim.peers import uses_eval_mode

BN_BATCHES = 50
"""Training batches forwarded to recompute batch-norm statistics at the averaged weights."""

_BATCH_NORMS = (torch.nn.modules.batchnorm._BatchNorm,)


def has_batch_norm(model: torch.nn.Module) -> bool:
    """``True`` when ``model`` holds a batch-norm layer that tracks running statistics."""
    return any(isinstance(m, _BATCH_NORMS) and m.track_running_stats for m in model.modules())


def start_training_mode(optimizer: torch.optim.Optimizer) -> None:
    """Put an optimizer with a train/eval contract in train mode (it refuses to step otherwise)."""
    if uses_eval_mode(optimizer):
        optimizer.train()


@contextlib.contextmanager
def evaluated_weights(optimizer: torch.optim.Optimizer, model: torch.nn.Module,
                      forward_train_batches: Callable[[int], Iterable[None]] | None = None) -> Iterator[None]:  # fmt: skip
    """Inside the block the model holds the weights to evaluate; after it, the training point.

    Args:
        optimizer: Any optimizer; only those with ``.train()``/``.eval()`` methods change anything.
        model: The model being trained.
        forward_train_batches: Called with :data:`BN_BATCHES`, it forwards up to that many
            training batches through ``model`` (in train mode, no grad) and yields once per
            batch; used only when the model has batch norm.
    """
    if not uses_eval_mode(optimizer):
        yield
        return
    was_training = model.training
    optimizer.eval()
    try:
        if forward_train_batches is not None and has_batch_norm(model):
            _recompute_batch_norm(model, forward_train_batches)
        yield
    finally:
        model.train(was_training)
        optimizer.train()


def _recompute_batch_norm(model: torch.nn.Module, forward_train_batches: Callable[[int], Iterable[None]]) -> None:
    norms = [m for m in model.modules() if isinstance(m, _BATCH_NORMS) and m.track_running_stats]
    saved = [m.momentum for m in norms]
    for norm in norms:  # a cumulative average over the batches, not an EMA tilted to the last one
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    try:
        with torch.no_grad():
            for _ in forward_train_batches(BN_BATCHES):
                pass
    finally:
        for norm, momentum in zip(norms, saved):
            norm.momentum = momentum
