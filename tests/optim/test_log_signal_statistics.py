"""The log-α laws' signal statistics: Kish's effective sample size, bias-corrected moments, the z-test."""

from __future__ import annotations

import math

import pytest
import torch

from gradretention.optim.controllers.signal_statistics import (effective_sample_size, rms_normalised,
                                                               significant_mean, update_signal_moments)


@pytest.mark.parametrize("rho", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("steps", [1, 2, 7, 300])
def test_effective_sample_size_is_kish_of_the_ema_weights(rho, steps):
    weights = [rho ** (steps - i) for i in range(1, steps + 1)]
    assert effective_sample_size(rho, steps) == pytest.approx(sum(weights) ** 2 / sum(w * w for w in weights), rel=1e-12)


def test_effective_sample_size_tends_to_one_plus_rho_over_one_minus_rho():
    assert effective_sample_size(0.9, 10_000) == pytest.approx(19.0, rel=1e-12)
    assert effective_sample_size(0.0, 50) == 1.0


def feed(values: list[float], k: float, rho: float = 0.9) -> tuple[list[float], list[float], list[float]]:
    group = {"signal_smoothing": rho, "significance": k}
    means, squares, gates = [], [], []
    for value in values:
        mean, square = update_signal_moments(group, torch.tensor(value, dtype=torch.float64))
        means.append(float(mean))
        squares.append(float(square))
        gates.append(float(significant_mean(group, mean, square)))
    return means, squares, gates


def test_moments_are_the_bias_corrected_weighted_means():
    values = [0.3, -0.1, 0.25, 0.05, -0.4, 0.2]
    means, squares, _ = feed(values, 2.0)
    for n in range(1, len(values) + 1):
        weights = [0.9 ** (n - i) for i in range(1, n + 1)]
        total = sum(weights)
        assert means[n - 1] == pytest.approx(sum(w * v for w, v in zip(weights, values)) / total, rel=1e-12)
        assert squares[n - 1] == pytest.approx(sum(w * v * v for w, v in zip(weights, values)) / total, rel=1e-12)


def test_z_test_gates_on_k_standard_errors_of_the_weighted_mean():
    values = [0.3, -0.1, 0.25, 0.05, -0.4, 0.2, 0.35, 0.3, 0.28, 0.4]
    for k in (0.5, 1.0, 2.0, 3.0):
        means, squares, gates = feed(values, k)
        for n, (mean, square, gate) in enumerate(zip(means, squares, gates), start=1):
            weights = [0.9 ** (n - i) for i in range(1, n + 1)]
            n_eff = sum(weights) ** 2 / sum(w * w for w in weights)
            se = math.sqrt(max(square - mean**2, 0.0) / (n_eff - 1)) if n > 1 else math.inf
            assert gate == float(abs(mean) > k * se), (k, n)
    assert feed(values, 1.0)[2][0] == 0.0  # one sample: no variance, never significant
    assert 0.0 < sum(feed(values, 1.0)[2]) < len(values)  # the test both opens and stays shut on these values


def test_rms_normalised_is_zero_for_an_all_zero_signal():
    zero = torch.zeros((), dtype=torch.float64)
    assert float(rms_normalised(zero, zero)) == 0.0
    assert float(rms_normalised(torch.tensor(-0.2, dtype=torch.float64), torch.tensor(0.04, dtype=torch.float64))) == -1.0
