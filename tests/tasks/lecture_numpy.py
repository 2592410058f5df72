"""The Adagrad lecture's training step, written as the lecture writes it (numpy, nnfs.io ch. 10).

An oracle for the tests: dense 2 → 64, ReLU, dense 64 → 3, softmax cross-entropy averaged
over the batch, and the lecture's three optimizers with its decay
``lr_t = lr / (1 + decay · t)``, ``t`` the updates already made::

    SGD + momentum:  v ← μ v − lr_t g;        θ ← θ + v
    Adagrad:         c ← c + g²;              θ ← θ − lr_t g / (√c + ε)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def gradients(params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """Loss and gradients of ``[W1 (2, 64), b1 (64,), W2 (64, 3), b2 (3,)]`` on the full batch."""
    w1, b1, w2, b2 = params
    z1 = x @ w1 + b1
    a1 = np.maximum(0.0, z1)
    z2 = a1 @ w2 + b2
    exp = np.exp(z2 - z2.max(axis=1, keepdims=True))
    probs = exp / exp.sum(axis=1, keepdims=True)
    loss = float(-np.log(probs[np.arange(len(y)), y]).mean())
    d2 = probs.copy()
    d2[np.arange(len(y)), y] -= 1.0
    d2 /= len(y)
    d1 = (d2 @ w2.T) * (z1 > 0)
    return loss, [x.T @ d1, d1.sum(axis=0), a1.T @ d2, d2.sum(axis=0)]


@dataclass
class LectureOptimizer:
    """The lecture's ``Optimizer_SGD`` (``kind="sgd"``, with ``momentum``) or ``Optimizer_Adagrad``."""

    kind: str
    lr: float = 1.0
    decay: float = 0.0
    momentum: float = 0.0
    eps: float = 1e-7
    iterations: int = 0
    state: list[np.ndarray] = field(default_factory=list)

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        lr = self.lr * (1.0 / (1.0 + self.decay * self.iterations))
        if not self.state:
            self.state = [np.zeros_like(p) for p in params]
        for param, grad, state in zip(params, grads, self.state):
            if self.kind == "adagrad":
                state += grad**2
                param -= lr * grad / (np.sqrt(state) + self.eps)
            else:
                state *= self.momentum
                state -= lr * grad
                param += state
        self.iterations += 1
