"""The shared absolute lr grid: half-decade points and the edge extension.

Every point is ``10 ** (k / 2)`` for an integer ``k`` (the "half-decade index"), rounded to
12 significant digits so that tables read ``0.000316227766017`` the same everywhere::

    k = -10 -> 1e-05,  k = -9 -> 3.16e-05,  ...,  k = -1 -> 0.316,  k = 0 -> 1

:class:`GridSearch` holds one (task, label)'s scores and decides, after each round, whether
the best point sits on an edge of what was scored and another half-decade is needed:

- best strictly inside (or the grid is a single point): stop, ``"interior"``;
- best on the low (high) edge: score ``k_min - 1`` (``k_max + 1``), unless the side has
  already been extended ``bound`` times (stop, ``"bound: 3 extra points"``, the edge kept)
  or the point beyond had every tuning seed diverge (stop, ``"every tuning seed diverged
  at 3.16"``: the optimum is bracketed by divergence, no edge).

Ties go to the smaller lr, as in :func:`~gradretention.bench.protocol.selection.best_point`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from gradretention.bench.protocol.selection import PointScore, best_point

DEFAULT_LOW, DEFAULT_HIGH = 1e-5, 1.0  # the main job's initial span, both ends included
DEFAULT_BOUND = 3  # extra half-decades per side at most


def half_decade(index: int) -> float:
    """The lr at half-decade ``index``: ``10 ** (index / 2)`` to 12 significant digits."""
    return float(f"{10 ** (index / 2):.12g}")


def half_decade_index(lr: float) -> int:
    """The nearest half-decade index of ``lr`` (``half_decade_index(3.16e-4) == -7``)."""
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"an lr on the grid must be a positive finite number, got {lr!r}")
    return round(2 * math.log10(lr))


def initial_indices(low: float = DEFAULT_LOW, high: float = DEFAULT_HIGH) -> tuple[int, ...]:
    """Half-decade indices from ``low`` to ``high``, both ends snapped outward onto the grid.

    Raises:
        ValueError: ``low`` or ``high`` not positive, or ``low > high``.
    """
    for name, value in (("lr_low", low), ("lr_high", high)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if low > high:
        raise ValueError(f"lr_low must be <= lr_high, got {low!r} > {high!r}")
    first = math.floor(2 * math.log10(low) + 1e-9)
    last = math.ceil(2 * math.log10(high) - 1e-9)
    return tuple(range(first, last + 1))


def initial_grid(low: float = DEFAULT_LOW, high: float = DEFAULT_HIGH) -> tuple[float, ...]:
    """The half-decade lrs from ``low`` to ``high`` (:func:`initial_indices`), ascending."""
    return tuple(half_decade(k) for k in initial_indices(low, high))


@dataclass
class GridSearch:
    """The grid protocol's state for one (task, label); pure bookkeeping, no training.

    Args:
        lrs: The initial grid. With ``extend`` its points must be half-decade points.
        bound: Extra points per side at most; 0 never extends.
        extend: ``False`` for a grid the user listed (``--lrs``, ``--lr-factors``): scored
            as given, never extended, its edge still marked.
        higher_is_better: ``False`` where the score is a loss.
    """

    lrs: tuple[float, ...]
    bound: int = DEFAULT_BOUND
    extend: bool = True
    higher_is_better: bool = True
    scores: dict[float, PointScore] = field(default_factory=dict)
    extra: dict[str, int] = field(default_factory=lambda: {"low": 0, "high": 0})
    stop_reason: str = ""
    edge: str = ""

    def __post_init__(self) -> None:
        if not self.lrs:
            raise ValueError("a grid needs at least one point")
        if self.bound < 0:
            raise ValueError(f"the extension bound must be >= 0, got {self.bound}")
        off = [lr for lr in self.lrs if self.extend and half_decade(half_decade_index(lr)) != lr]
        if off:
            raise ValueError(f"an extended grid holds half-decade points only, got {off[0]!r}")
        self._pending: list[float] = sorted(set(self.lrs))
        self._last_added: float | None = None

    @property
    def done(self) -> bool:
        return not self._pending and bool(self.stop_reason)

    def pending(self) -> tuple[float, ...]:
        """The lrs to score in the next round (empty once :attr:`done`)."""
        return tuple(self._pending)

    def update(self, scores: Mapping[float, PointScore]) -> None:
        """Take the pending points' scores (keyed by lr) and decide the next round.

        Raises:
            KeyError: a pending lr has no score.
        """
        for lr in self._pending:
            self.scores[lr] = scores[lr]
        self._pending = self._next_points()

    def best(self) -> tuple[float, PointScore]:
        """The best lr scored so far and its score (ties: the smaller lr)."""
        lr = best_point(self.scores, self.higher_is_better)
        return lr, self.scores[lr]

    def grid(self) -> tuple[float, ...]:
        """Every lr scored, ascending."""
        return tuple(sorted(self.scores))

    def _next_points(self) -> list[float]:
        scored = sorted(self.scores)
        best = self.best()[0]
        if len(scored) == 1:
            return self._stop("one grid point: nothing to tune", "")
        if scored[0] < best < scored[-1]:
            last = self._last_added
            if last is not None and self.scores[last].all_diverged and scored.index(last) in (0, len(scored) - 1):
                # The half-decade beyond the old edge blew up on every seed: it brackets the optimum.
                return self._stop(f"every tuning seed diverged at {last:g}", "")
            return self._stop("interior", "")
        side = "low" if best == scored[0] else "high"
        if not self.extend:
            return self._stop("the listed grid is not extended", side)
        if self.extra[side] >= self.bound:
            return self._stop(f"bound: {self.bound} extra points", side)
        self.extra[side] += 1
        step = -1 if side == "low" else 1
        self._last_added = half_decade(half_decade_index(best) + step)
        return [self._last_added]

    def _stop(self, reason: str, edge: str) -> list[float]:
        self.stop_reason, self.edge = reason, edge
        return []
