"""EnhancedSGD's default Q-learning controller: rewards are advantages, exploration is a probe.

The spec's controller (:class:`~.qlearning.ScaleController`, ``reward="spec"``) rewards an
action with the loss's relative fall, which is positive whenever training progresses, so the
first action tried keeps winning and its nudges compound: ``lr_scale`` walks to a clamp, a
different one per seed. :class:`AdvantageController` keeps the three tables, the actions
{×(1−nudge), ×1, ×(1+nudge)} and the spike guard, and changes what is learnt from.

Per decision k, every K = ``q_interval`` steps (L̄_k the mean loss of the window's K steps,
σ²_k the smoothed gradient variance at its end, β = 0.9)::

    ρ_k = (L̄_{k−1} − L̄_k)/|L̄_{k−1}|                      relative improvement over the window
    A_k = ρ_k − b_{k−1},  r_k = clip(A_k/√v_{k−1}, −3, 3)   advantage over the baseline, in its own sd
    b_k = β b_{k−1} + (1−β) ρ_k,  v_k = β v_{k−1} + (1−β) A_k²   (b_1 = ρ_1, v_1 = ρ_1²: r_1 = 0)
    s_k = 3·[ρ_k < 0: rising | ρ_k < b_{k−1}: falling slowly | else: falling fast]
          + [σ² trend over the window: falling | flat | rising]  (the spec's ±1 % thresholds)
    Q(s_{k−1}, a) += η (r_k + γ max_a' Q(s_k, a') − Q(s_{k−1}, a)),  η = max(q_lr, 1/N(s_{k−1}, a))
    greedy a = argmax_a Q(s_k, a) − [a ≠ hold]·2·se(s_k, a)    (an untried move is never greedy)
    se = max(1/√N, √(q_lr/(2 − q_lr)))                        sd of Q from N unit-sd rewards

With ε (decaying per decision) an action is drawn at random instead, and applied as a probe:
its factor lasts one window and is then undone, so exploration measures an action without
letting random moves compound into a random walk of the scales; greedy moves persist. The
count-based η makes Q a sample mean early on (Watkins & Dayan's conditions Σ η = ∞,
Σ η² < ∞ hold until the floor ``q_lr`` keeps it tracking a changing problem), and the
margin asks for evidence before a greedy move: with rewards in units of their own spread,
an action must beat *hold* by two standard errors of its estimate. Only ``lr_scale`` is learnt;
``momentum_scale`` and ``grad_scale`` hold at their start (1, or the Bayesian draw), because
``grad_scale`` multiplies the same step as ``lr_scale`` (b ← μb + s·g̃, θ ← θ − αb: two tables
would split one signal) and ``momentum_scale`` acts through 1/(1 − μ): at μ = 0.9 one 5 % nudge
changes the effective step by 80 %, and measured on mnist1d-cnn its greedy moves drove μ to
the 0.99 cap and runs to divergence. The spike guard compares
window means (a window's mean above ``spike_factor ×`` the mean of the last 10 windows'
halves ``lr_scale``; a non-finite loss halves it at once), since a single small-batch loss
1.5× the running mean is routine and the spec's per-step guard halves the rate for good
on such noise. On a problem where no
action helps, the greedy policy holds and EnhancedSGD is the momentum SGD it wraps.

References: C. Watkins, P. Dayan, "Q-learning", Machine Learning 8, 1992; C. Daniel,
J. Taylor, S. Nowozin, "Learning step size controllers for robust neural network training",
AAAI 2016 (step-size changes chosen from loss features every K steps); C. Xu, T. Qin, G. Wang,
T.-Y. Liu, "Reinforcement learning for learning rate control", arXiv 1705.11159, 2017
(rewards from the loss's improvement). The baseline is the REINFORCE baseline of
R. Williams, Machine Learning 8, 1992, applied to a one-step reward.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from gradretention.optim.controllers.qlearning import (
    ACTION_STEPS,
    HOLD,
    SCALE_NAMES,
    TINY,
    VARIANCE_THRESHOLDS,
    QConfig,
    ScaleController,
    _clamp_scale,
    relative_change,
    td_update,
    trend_bin,
)

BASELINE_SMOOTHING = 0.9
REWARD_CLIP = 3.0
CONFIDENCE = 2.0
"""Standard errors by which a greedy move must beat *hold* (a one-sided 2 % false-move rate per decision)."""
LEARNED: tuple[str, ...] = ("lr_scale",)
"""The scales this controller moves; the others hold at their start (module docstring: why)."""
SPIKE_WINDOWS = 10
"""Window means the spike guard compares a window's mean with."""
LOSS_BINS = 3  # rising | falling slowly | falling fast
ADVANTAGE_STATES = LOSS_BINS * (len(VARIANCE_THRESHOLDS) + 1)
ADVANTAGE_KEYS: tuple[str, ...] = ("window_sum", "window_count", "window_mean", "window_variance", "baseline",
                                   "spread", "base_scales", "probing")


def improvement_bin(improvement: float, baseline: float) -> int:
    """0 when the loss rose, 1 when it fell by less than the baseline improvement, else 2."""
    if improvement < 0:
        return 0
    return 1 if improvement < baseline else 2


def advantage_state(improvement: float, baseline: float, variance_change: float) -> int:
    """The Q-table row of a window: 3 loss regimes × 3 variance trends."""
    return improvement_bin(improvement, baseline) * (len(VARIANCE_THRESHOLDS) + 1) + \
        trend_bin(variance_change, VARIANCE_THRESHOLDS)


def advantage_reward(improvement: float, baseline: float, spread: float) -> float:
    """``clip((ρ − b)/√v, −3, 3)``: the improvement's advantage in units of its running sd."""
    return max(-REWARD_CLIP, min(REWARD_CLIP, (improvement - baseline) / math.sqrt(spread + TINY)))


def standard_error(visits: int, q_lr: float) -> float:
    """sd of a Q estimate from ``visits`` unit-sd rewards: 1/√N while η = 1/N, then √(η/(2−η)) at the floor η = q_lr."""
    return max(1 / math.sqrt(visits), math.sqrt(q_lr / (2 - q_lr))) if visits else math.inf


def confident_action(row: list[float], visits: list[int], q_lr: float) -> int:
    """argmax of ``Q(a) − [a ≠ hold]·2·se(a)``; ties and untried moves go to *hold*."""
    scores = [value if action == HOLD else value - CONFIDENCE * standard_error(count, q_lr)
              for action, (value, count) in enumerate(zip(row, visits))]
    best = max(scores)
    return HOLD if scores[HOLD] == best else scores.index(best)


class AdvantageController(ScaleController):
    """Three Q-tables learning from advantages every ``q_interval`` steps; exploration probes (module docstring)."""

    state_count = ADVANTAGE_STATES

    def __init__(self, config: QConfig, epsilon: float, seed: int, bayesian_init_std: float = 0.0) -> None:
        super().__init__(config, epsilon, seed, bayesian_init_std)
        self.window_sum, self.window_count = 0.0, 0
        self.window_mean: float | None = None  # L̄_{k−1}
        self.window_variance: float | None = None  # σ² at the end of window k−1
        self.baseline: float | None = None  # b
        self.spread = 0.0  # v
        self.base_scales = dict(self.scales)  # the scales without this window's probes
        self.probing = {name: False for name in SCALE_NAMES}

    def observe(self, loss: float, variance: float) -> None:
        """Add ``loss`` to the window; at its end learn from the window's advantage and decide."""
        if not math.isfinite(loss):
            self._halve_lr()
            self.pending, self.window_sum, self.window_count = None, 0.0, 0
            return
        self.window_sum += loss
        self.window_count += 1
        if self.window_count < self.config.q_interval:
            return
        mean, self.window_sum, self.window_count = self.window_sum / self.window_count, 0.0, 0
        self._guard_spike(mean)
        if self.window_mean is None:
            state = advantage_state(0.0, 0.0, 0.0)
        else:
            improvement = -relative_change(mean, self.window_mean)
            variance_change = relative_change(variance, self.window_variance)
            if self.baseline is None:
                self.baseline, self.spread = improvement, improvement ** 2
            state = advantage_state(improvement, self.baseline, variance_change)
            self.last_reward = advantage_reward(improvement, self.baseline, self.spread)
            deviation = improvement - self.baseline
            self.baseline = BASELINE_SMOOTHING * self.baseline + (1 - BASELINE_SMOOTHING) * improvement
            self.spread = BASELINE_SMOOTHING * self.spread + (1 - BASELINE_SMOOTHING) * deviation ** 2
            if self.pending is not None:
                self._learn(self.pending["state"], self.pending["actions"], self.last_reward, state)
        self.window_mean, self.window_variance = mean, variance
        self.pending = {"state": state, "actions": self._act(state), "loss": mean}
        self.epsilon = max(min(self.config.epsilon_min, self.epsilon), self.epsilon * self.config.epsilon_decay)

    def _guard_spike(self, mean: float) -> None:
        """Halve ``lr_scale`` when a window's mean loss exceeds ``spike_factor ×`` the mean of the last 10 windows'.

        Window means, not batch losses: a mini-batch loss 1.5× the running mean is routine
        noise on small batches, and each false alarm would halve the rate for good.
        """
        recent = list(self.history)[-SPIKE_WINDOWS:]
        if recent and (average := sum(recent) / len(recent)) > 0 and mean > self.config.spike_factor * average:
            self._halve_lr()
        self.history.append(mean)

    def forget_pending(self) -> None:
        """A step without a loss: the window and the pending transition start afresh."""
        self.pending, self.window_sum, self.window_count = None, 0.0, 0

    def _halve_lr(self) -> None:
        self.base_scales["lr_scale"] = _clamp_scale("lr_scale", self.base_scales["lr_scale"] / 2)
        self.scales["lr_scale"] = _clamp_scale("lr_scale", self.scales["lr_scale"] / 2)

    def _learn(self, state: int, actions: list[int], reward: float, next_state: int) -> None:
        for name, action in zip(SCALE_NAMES, actions):
            if name not in LEARNED:
                continue
            table, visits = self.tables[name], self.visits[name]
            visits[state][action] += 1
            step = max(self.config.q_lr, 1 / visits[state][action])
            table[state][action] = td_update(table[state][action], reward, max(table[next_state]), step,
                                             self.config.discount)

    def _act(self, state: int) -> list[int]:
        draws = torch.rand(len(SCALE_NAMES), generator=self.generator, dtype=torch.float64).tolist()
        randoms = torch.randint(len(ACTION_STEPS), (len(SCALE_NAMES),), generator=self.generator).tolist()
        actions = []
        for name, draw, random_action in zip(SCALE_NAMES, draws, randoms):
            # Three draws per decision whatever is learnt, so a seed fixes the stream.
            self.probing[name] = name in LEARNED and draw < self.epsilon
            action = random_action if self.probing[name] else HOLD if name not in LEARNED else \
                confident_action(self.tables[name][state], self.visits[name][state], self.config.q_lr)
            factor = 1 + ACTION_STEPS[action] * self.config.nudge
            moved = _clamp_scale(name, self.base_scales[name] * factor)
            if not self.probing[name]:
                self.base_scales[name] = moved
            self.scales[name] = moved  # a probe's factor is undone at the next decision (from base_scales)
            self.last_actions[name] = float(ACTION_STEPS[action])
            self.recent[name].append(action)
            actions.append(action)
        return actions

    def telemetry(self) -> dict[str, float]:
        """The base telemetry plus the reward baseline and how many scales are probing."""
        return {**super().telemetry(), "reward_baseline": self.baseline or 0.0,
                "probing": float(sum(self.probing.values()))}

    def state_dict(self) -> dict[str, Any]:
        """The spec controller's keys plus the window, baseline, spread, base scales and probes."""
        return {**super().state_dict(), "window_sum": self.window_sum, "window_count": self.window_count,
                "window_mean": self.window_mean, "window_variance": self.window_variance,
                "baseline": self.baseline, "spread": self.spread, "base_scales": dict(self.base_scales),
                "probing": dict(self.probing)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; ``ValueError`` naming missing keys."""
        missing = sorted(set(ADVANTAGE_KEYS) - set(state))
        if missing:
            raise ValueError(f"advantage Q-learning controller state lacks {', '.join(missing)} "
                             "(was it saved with reward='spec'?)")
        super().load_state_dict(state)
        self.window_sum, self.window_count = state["window_sum"], state["window_count"]
        self.window_mean, self.window_variance = state["window_mean"], state["window_variance"]
        self.baseline, self.spread = state["baseline"], state["spread"]
        self.base_scales, self.probing = dict(state["base_scales"]), dict(copy.deepcopy(state["probing"]))
