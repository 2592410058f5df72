"""Two per-step summaries of a run: how far α moved, and when the training loss hit its target.

:class:`AlphaTracker` reads every parameter group's lr (α) after every optimizer step — the
optimizer's ``applied_lrs()`` where it has one (EnhancedSGD, whose α is ``lr · lr_scale``), else
``group["lr"]`` — and keeps, per group, the smallest and largest ratio ``α_t / α_0``; from these::

    alpha_movement  = max over groups and steps of |α_t / α_0 − 1|   ("α inactive" below 0.01)
    alpha_min_ratio = min over groups and steps of α_t / α_0
    alpha_negative  = 1.0 if α_t <= 0 at any step in any group, else 0.0

|r − 1| is largest at the extremes of r, so the two extremes are all it needs. α may be a
float or a 0-dim tensor; a tensor's extremes stay on its device (no host sync per step).
A non-finite α counts as infinite movement.

:class:`LossTarget` finds the first step at which the *smoothed per-step training loss*
reaches the task's train-loss target: the exponential moving average of the batch losses,
debiased as Adam's moments are (so step 1's value is step 1's loss)::

    m_t = β m_{t−1} + (1 − β) ℓ_t,   m_0 = 0,   ℓ̂_t = m_t / (1 − β^t),   β = 0.9

The average spans about ten steps, so one lucky batch does not count as reaching the target,
while the step found is still a single step (its lag behind the raw losses is a few steps).
Losses arrive in windows (at log steps, read in one host sync); the seconds at that step are
interpolated linearly between the training times at the window's two ends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

EMA_BETA = 0.9


class AlphaTracker:
    """Extremes of ``α_t / α_0`` per parameter group over a run (see the module docstring)."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.initial = [_as_float(lr) for lr in self._alphas()]
        self.low: list[Any] = [_copied(lr) for lr in self._alphas()]
        self.high: list[Any] = [_copied(lr) for lr in self._alphas()]

    def _alphas(self) -> list[Any]:
        """Each group's α: the optimizer's ``applied_lrs()`` where it scales ``group["lr"]`` itself
        (EnhancedSGD steps with lr · lr_scale and leaves the group's lr to schedulers), else ``group["lr"]``."""
        applied = getattr(self.optimizer, "applied_lrs", None)
        return list(applied()) if callable(applied) else [group["lr"] for group in self.optimizer.param_groups]

    def observe(self) -> None:
        """Read every group's current α (after a step); a NaN sticks to both extremes."""
        for index, lr in enumerate(self._alphas()):
            if isinstance(lr, torch.Tensor):  # minimum / maximum propagate NaN, on the device
                self.low[index] = torch.minimum(self.low[index], lr.detach())
                self.high[index] = torch.maximum(self.high[index], lr.detach())
            elif lr != lr:
                self.low[index] = self.high[index] = math.nan
            else:  # comparisons with a NaN already held are false: it stays
                if lr < self.low[index]:
                    self.low[index] = float(lr)
                if lr > self.high[index]:
                    self.high[index] = float(lr)

    def summary(self) -> dict[str, float]:
        """``alpha_movement``, ``alpha_min_ratio`` and ``alpha_negative`` (one host read per tensor α)."""
        movement, min_ratio, negative = 0.0, math.inf, 0.0
        for alpha0, low, high in zip(self.initial, map(_as_float, self.low), map(_as_float, self.high)):
            if math.isnan(low) or math.isnan(high):
                movement = math.inf
                continue
            negative = max(negative, 1.0 if low <= 0 else 0.0)
            if alpha0 == 0:  # no ratio to an α that starts at 0: any change is unbounded movement
                movement = max(movement, 0.0 if low == high == 0 else math.inf)
                continue
            movement = max(movement, abs(high / alpha0 - 1), abs(low / alpha0 - 1))
            min_ratio = min(min_ratio, low / alpha0)
        return {"alpha_movement": movement, "alpha_min_ratio": min_ratio if min_ratio != math.inf else math.nan,
                "alpha_negative": negative}  # fmt: skip

    def state(self) -> dict[str, list[float]]:
        return {"initial": list(self.initial), "low": [_as_float(v) for v in self.low],
                "high": [_as_float(v) for v in self.high]}  # fmt: skip

    def restore(self, state: dict[str, list[float]]) -> None:
        """Continue from :meth:`state`; a tensor α's extremes come back in its dtype and device."""
        self.initial = list(state["initial"])
        lrs = self._alphas()
        self.low = [_like(value, lr) for value, lr in zip(state["low"], lrs)]
        self.high = [_like(value, lr) for value, lr in zip(state["high"], lrs)]


def _like(value: float, lr: Any) -> Any:
    if isinstance(lr, torch.Tensor):
        return torch.tensor(value, dtype=lr.dtype, device=lr.device)
    return float(value)


def _as_float(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


def _copied(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, torch.Tensor) else float(value)


class LossTarget:
    """The first step at which the debiased EMA of the batch losses is ``<= target``."""

    def __init__(self, target: float, beta: float = EMA_BETA) -> None:
        self.target, self.beta = float(target), beta
        self.average, self.seen = 0.0, 0
        self.seconds_before = 0.0  # training seconds at the end of the last window fed
        self.step: int | None = None
        self.seconds: float | None = None

    def feed(self, steps_before: int, losses: Sequence[float], seconds_now: float) -> None:
        """The batch losses of steps ``steps_before + 1 ..``, training time ``seconds_now`` at the last."""
        start_seconds, count = self.seconds_before, len(losses)
        self.seconds_before = seconds_now
        for offset, loss in enumerate(losses, start=1):
            self.seen += 1
            self.average = self.beta * self.average + (1 - self.beta) * loss
            smoothed = self.average / (1 - self.beta**self.seen)
            if self.step is None and smoothed <= self.target:  # NaN never reaches it
                self.step = steps_before + offset
                self.seconds = start_seconds + (seconds_now - start_seconds) * offset / count

    def summary(self) -> dict[str, float]:
        """``train_steps_to_target`` / ``train_seconds_to_target`` where reached, and the target."""
        out = {"train_loss_target": self.target}
        if self.step is not None and self.seconds is not None:
            out.update(train_steps_to_target=float(self.step), train_seconds_to_target=self.seconds)
        return out

    def state(self) -> dict[str, Any]:
        return {"average": self.average, "seen": self.seen, "seconds_before": self.seconds_before,
                "step": self.step, "seconds": self.seconds}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        self.average, self.seen = float(state["average"]), int(state["seen"])
        self.seconds_before, self.step, self.seconds = state["seconds_before"], state["step"], state["seconds"]
