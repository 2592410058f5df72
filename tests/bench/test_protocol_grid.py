"""The grid protocol's decisions on synthetic scores: no training, a known optimum."""

from __future__ import annotations

import math

import pytest

from gradretention.bench.protocol.grid import GridSearch, half_decade, half_decade_index, initial_grid
from gradretention.bench.protocol.selection import PointScore, best_point


def run_search(search: GridSearch, objective, diverges=lambda lr: False) -> list[tuple[float, ...]]:
    """Drive ``search`` with a scorer: score = objective(lr), or 0 (chance) where every seed diverges."""
    rounds = []
    while not search.done:
        lrs = search.pending()
        rounds.append(lrs)
        search.update({lr: PointScore(0.0, 3, 3) if diverges(lr) else PointScore(objective(lr), 3) for lr in lrs})
    return rounds


def peak_at(lr_star: float):
    """A unimodal score in log lr with its maximum at ``lr_star``."""
    return lambda lr: 1.0 - 0.1 * abs(math.log10(lr) - math.log10(lr_star))


def test_initial_grid_is_every_half_decade_from_1e_5_to_1():
    grid = initial_grid()
    assert len(grid) == 11 and grid[0] == 1e-5 and grid[-1] == 1.0 and grid[1] == 3.16227766017e-05
    assert [half_decade_index(lr) for lr in grid] == list(range(-10, 1))
    assert initial_grid(2e-4, 0.05) == (0.0001, 0.000316227766017, 0.001, 0.00316227766017, 0.01,
                                        0.0316227766017, 0.1)  # snapped outward  # fmt: skip


def test_an_optimum_above_the_grid_is_followed_until_the_bound_stops_it_on_the_edge():
    search = GridSearch(initial_grid(1e-4, 1e-2))
    rounds = run_search(search, peak_at(0.3))
    # 1e-2 is the top and best: add 3.16e-2, then 0.1, then 0.316 (best), then 1 (worse): interior.
    assert rounds[1:] == [(0.0316227766017,), (0.1,), (0.316227766017,)]
    assert search.extra == {"low": 0, "high": 3}
    # Bound 3 reached with the best on the edge at 0.316: the bound stops it, recorded.
    assert search.best()[0] == 0.316227766017
    assert (search.edge, search.stop_reason) == ("high", "bound: 3 extra points")


def test_an_optimum_inside_the_extension_bound_stops_interior():
    search = GridSearch(initial_grid(1e-4, 1e-2))
    run_search(search, peak_at(0.03))
    assert search.best()[0] == 0.0316227766017
    assert (search.edge, search.stop_reason) == ("", "interior")
    assert search.grid()[-1] == 0.1  # one point beyond the best was needed to see it is interior


def test_an_optimum_below_the_grid_extends_downwards_until_the_bound():
    search = GridSearch(initial_grid(1e-3, 1e-1), bound=2)
    rounds = run_search(search, peak_at(1e-6))
    assert rounds[1:] == [(0.000316227766017,), (0.0001,)]
    assert search.best()[0] == 0.0001 and search.edge == "low" and search.stop_reason == "bound: 2 extra points"


def test_a_point_where_every_seed_diverged_stops_the_extension_and_is_recorded():
    search = GridSearch(initial_grid(1e-4, 1e-2))
    run_search(search, peak_at(10.0), diverges=lambda lr: lr > 0.05)
    assert search.grid()[-1] == 0.1 and search.best()[0] == 0.0316227766017
    assert (search.edge, search.stop_reason) == ("", "every tuning seed diverged at 0.1")


def test_a_listed_grid_is_never_extended_but_its_edge_is_marked():
    search = GridSearch((0.01, 0.1), extend=False)
    rounds = run_search(search, peak_at(1.0))
    assert rounds == [(0.01, 0.1)]
    assert (search.best()[0], search.edge, search.stop_reason) == (0.1, "high", "the listed grid is not extended")


def test_ties_go_to_the_smaller_lr_and_losses_are_minimised():
    scores = {0.1: PointScore(0.5, 3), 0.01: PointScore(0.5, 3), 1.0: PointScore(0.4, 3)}
    assert best_point(scores) == 0.01
    assert best_point(scores, higher_is_better=False) == 1.0


def test_an_extended_grid_refuses_points_off_the_half_decades():
    with pytest.raises(ValueError, match="half-decade points only, got 0.002"):
        GridSearch((0.001, 0.002))
    assert half_decade(-7) == 0.000316227766017
