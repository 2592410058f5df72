"""The spec's tabular Q-learning controller of :class:`~gradretention.optim.algorithms.enhanced.EnhancedSGD`.

Small pure pieces — trend bins, reward, temporal-difference update, ε-greedy choice, action
entropy — and :class:`ScaleController`, which nudges three multiplicative scales (lr, momentum,
gradient) with one Q-table each (specs/algorithms.md §4; ``reward="spec"``). Everything runs
on the host on plain floats: the controller sees two scalars per step (the loss and the
smoothed gradient variance) and never a gradient. The default controller, which learns from
an advantage over a baseline, is :mod:`.qlearning_advantage`.
"""

from __future__ import annotations

import copy
import math
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

SCALE_BOUNDS: dict[str, tuple[float, float]] = {
    "lr_scale": (0.1, 10.0),
    "momentum_scale": (0.5, 1.5),  # μ_t is capped at 0.99 anyway; this keeps the scale from drifting
    "grad_scale": (0.5, 2.0),
}
SCALE_NAMES: tuple[str, ...] = tuple(SCALE_BOUNDS)
ACTION_STEPS: tuple[int, ...] = (-1, 0, 1)
"""Action ``i`` multiplies a scale by ``1 + ACTION_STEPS[i]·nudge``: shrink, hold, grow."""
HOLD = 1

# Relative change of the loss EMA: falling fast | falling | flat | rising.
LOSS_THRESHOLDS: tuple[float, ...] = (-1e-2, -1e-3, 1e-3)
# Relative change of the smoothed gradient variance: falling | flat | rising.
VARIANCE_THRESHOLDS: tuple[float, ...] = (-1e-2, 1e-2)
STATE_COUNT = (len(LOSS_THRESHOLDS) + 1) * (len(VARIANCE_THRESHOLDS) + 1)
LOSS_SMOOTHING = 0.9
"""Smoothing of the loss EMA whose relative change gives the loss-trend bin."""
HISTORY_LENGTH = 100
"""Losses kept for the spike guard (the mean of the last 100)."""
TINY = 1e-12
ENTROPY_WINDOW = 100
"""Decisions over which the action entropy in the telemetry is measured."""
STATE_KEYS: tuple[str, ...] = ("tables", "scales", "epsilon", "loss_ema", "variance", "pending", "history",
                               "last_actions", "last_reward", "generator")
TALLY_KEYS: tuple[str, ...] = ("visits", "recent")
"""State keys that count visits and recent actions (absent from state dicts saved before them)."""


def relative_change(new: float, old: float) -> float:
    """``(new − old)/(|old| + 1e-12)``."""
    return (new - old) / (abs(old) + TINY)


def trend_bin(change: float, thresholds: tuple[float, ...]) -> int:
    """Index of the bin holding ``change``: the number of thresholds at or below it."""
    return bisect_right(thresholds, change)


def state_index(loss_change: float, variance_change: float) -> int:
    """The Q-table row for a (loss trend, variance trend) pair; 12 rows in all."""
    return trend_bin(loss_change, LOSS_THRESHOLDS) * (len(VARIANCE_THRESHOLDS) + 1) + \
        trend_bin(variance_change, VARIANCE_THRESHOLDS)


def loss_reward(previous_loss: float, loss: float) -> float:
    """``r = −(L_{t+1} − L_t)/(|L_t| + 1e-12)``: positive when the loss fell."""
    return -(loss - previous_loss) / (abs(previous_loss) + TINY)


def td_update(value: float, reward: float, next_best: float, q_lr: float, discount: float) -> float:
    """``Q(s,a) + q_lr·(r + discount·max Q(s',·) − Q(s,a))``."""
    return value + q_lr * (reward + discount * next_best - value)


def greedy_action(row: list[float]) -> int:
    """Argmax of a Q-row; ties go to *hold*, then to the lowest index (an untrained row holds)."""
    best = max(row)
    return HOLD if row[HOLD] == best else row.index(best)


def choose_action(row: list[float], epsilon: float, draw: float, random_action: int) -> int:
    """ε-greedy: ``random_action`` when the uniform ``draw < epsilon``, else the greedy action."""
    return random_action if draw < epsilon else greedy_action(row)


def action_entropy(actions: list[int]) -> float:
    """Entropy (nats) of the empirical action frequencies: 0 for a stuck policy, ln 3 ≈ 1.10 at most."""
    if not actions:
        return 0.0
    counts = [actions.count(action) for action in range(len(ACTION_STEPS))]
    return -sum(c / len(actions) * math.log(c / len(actions)) for c in counts if c)


@dataclass(frozen=True)
class QConfig:
    """The controller's hyperparameters (EnhancedSGD's constructor arguments of the same names)."""

    q_lr: float = 0.1
    discount: float = 0.9
    epsilon_decay: float = 0.995
    epsilon_min: float = 0.01
    nudge: float = 0.05
    spike_factor: float = 1.5
    q_interval: int = 10  # steps per decision (the advantage controller's; the spec's acts every step)


class ScaleController:
    """Three Q-tables nudging ``lr_scale``, ``momentum_scale`` and ``grad_scale``; one per optimizer.

    Each step that brings a loss calls :meth:`observe`: the reward for the previous step's
    actions is the relative fall of the loss, each table takes one TD update, then each
    picks its next action ε-greedily in the new state, the scales move and are clamped,
    ε decays, and a loss above ``spike_factor ×`` the mean of the last 100 halves
    ``lr_scale``. Random draws come from the controller's own seeded CPU generator, three
    uniforms and three action indices per step whatever the branch, so a seed fixes the run.
    """

    state_count = STATE_COUNT

    def __init__(self, config: QConfig, epsilon: float, seed: int, bayesian_init_std: float = 0.0) -> None:
        self.config = config
        self.generator = torch.Generator().manual_seed(seed)
        self.tables = {name: [[0.0] * len(ACTION_STEPS) for _ in range(self.state_count)] for name in SCALE_NAMES}
        # Visits per (state, action) and the last actions taken: the telemetry's "is it stuck?" check.
        self.visits = {name: [[0] * len(ACTION_STEPS) for _ in range(self.state_count)] for name in SCALE_NAMES}
        self.recent: dict[str, deque[int]] = {name: deque(maxlen=ENTROPY_WINDOW) for name in SCALE_NAMES}
        self.scales = {name: 1.0 for name in SCALE_NAMES}
        if bayesian_init_std > 0:
            draws = torch.randn(len(SCALE_NAMES), generator=self.generator, dtype=torch.float64).tolist()
            self.scales = {name: _clamp_scale(name, 1.0 + bayesian_init_std * draw)
                           for name, draw in zip(SCALE_NAMES, draws)}
        self.epsilon = epsilon
        self.loss_ema: float | None = None
        self.variance: float | None = None
        self.pending: dict[str, Any] | None = None  # the last (state, actions, loss) awaiting its reward
        self.history: deque[float] = deque(maxlen=HISTORY_LENGTH)
        self.last_actions = {name: 0.0 for name in SCALE_NAMES}
        self.last_reward = 0.0

    def observe(self, loss: float, variance: float) -> None:
        """Learn from ``loss`` (the reward of the pending actions) and act for the coming update."""
        if not math.isfinite(loss):
            # A NaN reward would poison every table: treat it as a spike and start afresh.
            self._halve_lr()
            self.pending = None
            return
        state = self._next_state(loss, variance)
        if self.pending is not None:
            self.last_reward = loss_reward(self.pending["loss"], loss)
            self._learn(self.pending["state"], self.pending["actions"], self.last_reward, state)
        actions = self._act(state)
        self._guard_spike(loss)
        self.pending = {"state": state, "actions": actions, "loss": loss}
        # ε decays towards epsilon_min and never rises: ε = 0 (a greedy controller) stays 0.
        self.epsilon = max(min(self.config.epsilon_min, self.epsilon), self.epsilon * self.config.epsilon_decay)

    def _guard_spike(self, loss: float) -> None:
        """Halve ``lr_scale`` when ``loss`` exceeds ``spike_factor ×`` the mean of the last 100; keep it."""
        if self.history and (mean := sum(self.history) / len(self.history)) > 0 and \
                loss > self.config.spike_factor * mean:
            self._halve_lr()
        self.history.append(loss)

    def _halve_lr(self) -> None:
        self.scales["lr_scale"] = _clamp_scale("lr_scale", self.scales["lr_scale"] / 2)

    def forget_pending(self) -> None:
        """Drop the transition awaiting a reward (a step came without a loss)."""
        self.pending = None

    def _next_state(self, loss: float, variance: float) -> int:
        ema = loss if self.loss_ema is None else LOSS_SMOOTHING * self.loss_ema + (1 - LOSS_SMOOTHING) * loss
        loss_change = 0.0 if self.loss_ema is None else relative_change(ema, self.loss_ema)
        variance_change = 0.0 if self.variance is None else relative_change(variance, self.variance)
        self.loss_ema, self.variance = ema, variance
        return state_index(loss_change, variance_change)

    def _learn(self, state: int, actions: list[int], reward: float, next_state: int) -> None:
        for name, action in zip(SCALE_NAMES, actions):
            table = self.tables[name]
            table[state][action] = td_update(table[state][action], reward, max(table[next_state]),
                                             self.config.q_lr, self.config.discount)
            self.visits[name][state][action] += 1

    def _act(self, state: int) -> list[int]:
        draws = torch.rand(len(SCALE_NAMES), generator=self.generator, dtype=torch.float64).tolist()
        randoms = torch.randint(len(ACTION_STEPS), (len(SCALE_NAMES),), generator=self.generator).tolist()
        actions = []
        for name, draw, random_action in zip(SCALE_NAMES, draws, randoms):
            action = choose_action(self.tables[name][state], self.epsilon, draw, random_action)
            step = ACTION_STEPS[action]
            self.scales[name] = _clamp_scale(name, self.scales[name] * (1 + step * self.config.nudge))
            self.last_actions[name] = float(step)
            self.recent[name].append(action)
            actions.append(action)
        return actions

    def telemetry(self) -> dict[str, float]:
        """Action entropy per scale over the last decisions, states visited, fewest visits of a visited state."""
        visited = [sum(row) for row in self.visits["lr_scale"] if sum(row)]
        return {**{f"entropy_{name}": action_entropy(list(self.recent[name])) for name in SCALE_NAMES},
                "states_visited": float(len(visited)), "state_visits_min": float(min(visited, default=0))}

    def state_dict(self) -> dict[str, Any]:
        """Tables, scales, ε, loss EMA, variance, pending transition, loss history, generator state."""
        return {"tables": copy.deepcopy(self.tables), "scales": dict(self.scales), "epsilon": self.epsilon,
                "loss_ema": self.loss_ema, "variance": self.variance, "pending": copy.deepcopy(self.pending),
                "history": list(self.history), "last_actions": dict(self.last_actions),
                "last_reward": self.last_reward, "generator": self.generator.get_state(),
                "visits": copy.deepcopy(self.visits), "recent": {name: list(v) for name, v in self.recent.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; ``ValueError`` naming missing keys."""
        missing = sorted(set(STATE_KEYS) - set(state))
        if missing:
            raise ValueError(f"Q-learning controller state lacks {', '.join(missing)}")
        self.tables = copy.deepcopy(state["tables"])
        self.scales = dict(state["scales"])
        self.epsilon, self.loss_ema, self.variance = state["epsilon"], state["loss_ema"], state["variance"]
        self.pending = copy.deepcopy(state["pending"])
        self.history = deque(state["history"], maxlen=HISTORY_LENGTH)
        self.last_actions, self.last_reward = dict(state["last_actions"]), state["last_reward"]
        self.generator.set_state(state["generator"].cpu())
        if all(key in state for key in TALLY_KEYS):
            self.visits = copy.deepcopy(state["visits"])
            self.recent = {name: deque(values, maxlen=ENTROPY_WINDOW) for name, values in state["recent"].items()}


def _clamp_scale(name: str, value: float) -> float:
    low, high = SCALE_BOUNDS[name]
    return min(max(value, low), high)
