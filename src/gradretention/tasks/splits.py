"""Seeded train / validation / test splits and train-only standardization.

Every embedded task fixes its splits from the data seed alone, so two runs with the
same data seed see identical tensors whatever the optimizer or the model seed. The
index arithmetic is done with numpy's ``default_rng`` (never the global RNG) so that
loading a task has no side effect on other code's random streams.
"""

from __future__ import annotations

import numpy as np
import torch

from gradretention.tasks.base import Split


def check_data_seed(data_seed: int) -> int:
    """Return ``data_seed`` as an int, or raise ``ValueError`` if it is not a valid seed.

    Args:
        data_seed: a non-negative integer below 2**32 (numpy's legacy seeding, which the
            mnist1d generator uses, rejects anything outside that range).
    """
    if isinstance(data_seed, bool) or not isinstance(data_seed, (int, np.integer)):
        raise ValueError(f"data_seed must be an int in [0, 2**32), got {data_seed!r}")
    if not 0 <= int(data_seed) < 2**32:
        raise ValueError(f"data_seed must be an int in [0, 2**32), got {data_seed}")
    return int(data_seed)


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split example indices into train / val / test, class by class.

    Each class is permuted with the seed and cut by ``fractions``; the class's rounding
    remainder goes to train. Each split is then shuffled by the same seeded generator
    so that no split is ordered by class.

    Args:
        labels: 1-D integer class labels, one per example.
        fractions: (train, val, test) shares, each positive, summing to 1.
        seed: seed of the permutation.

    Returns:
        Three disjoint int64 index arrays that together cover ``range(len(labels))``.

    Example:
        >>> train, val, test = stratified_split(np.array([0, 0, 1, 1, 0, 1, 0, 1, 0, 1]), (0.6, 0.2, 0.2), 0)
        >>> len(train), len(val), len(test)
        (6, 2, 2)
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three positive shares summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(fractions[1] * len(members)))
        n_test = int(round(fractions[2] * len(members)))
        n_train = len(members) - n_val - n_test
        parts[0].append(members[:n_train])
        parts[1].append(members[n_train : n_train + n_val])
        parts[2].append(members[n_train + n_val :])
    train, val, test = (rng.permutation(np.concatenate(part)).astype(np.int64) for part in parts)
    return train, val, test


def holdout_split(n: int, num_holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into a seeded (kept, held-out) pair of disjoint index arrays."""
    if not 0 < num_holdout < n:
        raise ValueError(f"num_holdout must be in (0, {n}), got {num_holdout}")
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return order[num_holdout:], order[:num_holdout]


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Standardize every array per feature with the *train* mean and std (no test leakage).

    Features that are constant in train (e.g. the always-blank corner pixels of the
    8x8 digits) keep a std of 1, so they map to 0 instead of dividing by zero.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [(array - mean) / std for array in (train, *others)]


def make_split(inputs: np.ndarray, targets: np.ndarray) -> Split:
    """A :class:`Split` holding float32 inputs and int64 targets on the CPU."""
    return Split(
        torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int64)),
    )
