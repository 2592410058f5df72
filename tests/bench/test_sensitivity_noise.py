"""The noise reference of the lr-sensitivity width: null width and the permutation test of an α₀ effect."""

from __future__ import annotations

import numpy as np
import pytest

from gradretention.bench.analysis import sensitivity

LRS = np.array([1e-4, 10**-3.5, 1e-3, 10**-2.5, 1e-2, 10**-1.5, 1e-1])


def test_scores_that_ignore_alpha0_have_the_null_width_of_their_noise():
    # One optimizer that ignores α₀, its runs varying by ±0.3 points, then by ±3 points.
    base = np.array([[0.560, 0.575, 0.550, 0.570, 0.555, 0.580, 0.565],
                     [0.575, 0.550, 0.570, 0.560, 0.580, 0.555, 0.565],
                     [0.550, 0.580, 0.565, 0.575, 0.560, 0.570, 0.555]])  # fmt: skip
    quiet, loud = 0.565 + (base - 0.565) / 5, 0.565 + 2 * (base - 0.565)
    rng = np.random.default_rng(0)
    null_quiet, p_quiet = sensitivity.permutation_reference(LRS, quiet, True, rng, 2000)
    null_loud, p_loud = sensitivity.permutation_reference(LRS, loud, True, rng, 2000)
    # Every run lies within 0.6 points of every other: any arrangement keeps the whole grid.
    assert sensitivity.width_decades(LRS, quiet.mean(axis=0)) == null_quiet == pytest.approx(3.0)
    # At ±3 points per run the 3-seed means of a flat optimizer rarely stay within 1 point over 7 points.
    assert null_loud <= 1.0
    assert p_quiet > 0.5 and p_loud > 0.5  # no α₀ effect detected: the spread is the runs' own


def test_a_peaked_optimizer_has_a_strong_lr_effect_and_a_null_width_above_its_own():
    peaked = np.array([[0.20, 0.40, 0.70, 0.90, 0.70, 0.40, 0.20],
                       [0.22, 0.41, 0.69, 0.91, 0.71, 0.39, 0.21],
                       [0.21, 0.39, 0.71, 0.90, 0.69, 0.41, 0.19]])  # fmt: skip
    null_width, p = sensitivity.permutation_reference(LRS, peaked, True, np.random.default_rng(0), 2000)
    assert sensitivity.width_decades(LRS, peaked.mean(axis=0)) == 0.0
    # Only the 7! / (shuffles keeping the peak spread) few permutations reach the full 0.70 spread of means.
    assert p < 0.01
    assert null_width == 0.0


def test_one_grid_point_has_no_reference():
    null_width, p = sensitivity.permutation_reference(LRS[:1], np.array([[0.5], [0.6]]), True,
                                                      np.random.default_rng(0), 10)  # fmt: skip
    assert np.isnan(null_width) and np.isnan(p)
