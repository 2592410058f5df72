"""Named optimizers: thin classes over :class:`ComposedOptimizer` with the maths in the docstring."""

from __future__ import annotations

from typing import Any

from gradretention.optim.composed import ComposedOptimizer


class SGDHD(ComposedOptimizer):
    """SGD with hypergradient descent on the learning rate (SGD-HD, Baydin et al. 2018).

    Update, per param group (β = ``hypergrad_lr``)::

        h_t = Σ_p ⟨g_t, d_{t-1}⟩          (h_1 = 0; d is the SGD/momentum direction)
        α_t = α_{t-1} + β h_t             (lr_optimizer="sgd"; "sgdn"/"adam" drive α with momentum/Adam)
        θ_t = θ_{t-1} − α_t d_t

    State: ``previous_direction`` per param without heavy-ball momentum (with it, the
    ``momentum_buffer`` is d_{t-1}); ``hypergradient`` and the lr-optimizer scalars per group.

    α may go negative, as in the paper (its published runs show it late in training);
    ``lr_bounds=(low, high)`` clamps it.

    .. note:: Weight decay is applied out of place (``p.grad`` is never modified), params
       without a gradient are skipped, any number of param groups each keep their own α,
       and α changes once per step as a float64 0-dim tensor on the params' device, never
       tracked by autograd — four defects of the reference code not copied. Being a device
       tensor, α needs no host sync per step (read it with ``float(group["lr"])``).

    Reference: A. G. Baydin et al., "Online Learning Rate Adaptation with Hypergradient
    Descent", ICLR 2018, arXiv:1703.04782. Paper settings: α0 = 1e-3, β = 1e-3.

    Example:
        >>> opt = SGDHD(model.parameters(), lr=1e-3, hypergrad_lr=1e-3)
    """

    def __init__(self, params: Any, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, hypergrad_lr: float = 1e-3,
                 lr_optimizer: str = "sgd", **controller_options: Any) -> None:
        super().__init__(params, rule="sgd", controller="hypergradient", lr=lr, lr_optimizer=lr_optimizer,
                         momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                         hypergrad_lr=hypergrad_lr, **controller_options)


class SGDNHD(ComposedOptimizer):
    """SGD with Nesterov momentum and hypergradient descent on α (SGDN-HD, Baydin et al. 2018).

    Update (μ = ``momentum``, β = ``hypergrad_lr``)::

        b_t = μ b_{t-1} + g_t;   d_t = g_t + μ b_t
        h_t = Σ_p ⟨g_t, d_{t-1}⟩;  α_t = α_{t-1} + β h_t
        θ_t = θ_{t-1} − α_t d_t

    State: ``momentum_buffer`` and ``previous_direction`` per param (the Nesterov direction
    is not rebuildable from the buffer alone: one extra buffer).

    Reference: Baydin et al., ICLR 2018 (α0 = 1e-3, β = 1e-3, μ = 0.9).

    Example:
        >>> opt = SGDNHD(model.parameters(), lr=1e-3, momentum=0.9, hypergrad_lr=1e-3)
    """

    def __init__(self, params: Any, lr: float = 1e-3, momentum: float = 0.9, dampening: float = 0.0,
                 weight_decay: float = 0.0, hypergrad_lr: float = 1e-3, lr_optimizer: str = "sgd",
                 **controller_options: Any) -> None:
        super().__init__(params, rule="sgdn", controller="hypergradient", lr=lr, lr_optimizer=lr_optimizer,
                         momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=True,
                         hypergrad_lr=hypergrad_lr, **controller_options)


class AdamHD(ComposedOptimizer):
    """Adam with hypergradient descent on the learning rate (Adam-HD, Baydin et al. 2018).

    Update (β = ``hypergrad_lr``)::

        d_t = m̂_t / (√v̂_t + ε)               (torch.optim.Adam's direction)
        h_t = Σ_p ⟨g_t, d_{t-1}⟩;  α_t = α_{t-1} + β h_t
        θ_t = θ_{t-1} − α_t d_t

    State: exactly Adam's (``exp_avg``, ``exp_avg_sq``, ``step``): d_{t-1} is rebuilt from
    the moments before they update, so Adam-HD needs no extra buffer.

    .. note:: α changes once per step from the group-total h_t; the reference changed it
       tensor by tensor within one step.

    Reference: Baydin et al., ICLR 2018 (α0 = 1e-3; β = 1e-7 on MNIST, 1e-8 on CIFAR-10 VGG).

    Example:
        >>> opt = AdamHD(model.parameters(), lr=1e-3, hypergrad_lr=1e-7)
    """

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, hypergrad_lr: float = 1e-7,
                 lr_optimizer: str = "sgd", **controller_options: Any) -> None:
        super().__init__(params, rule="adam", controller="hypergradient", lr=lr, lr_optimizer=lr_optimizer,
                         betas=betas, eps=eps, weight_decay=weight_decay, hypergrad_lr=hypergrad_lr,
                         **controller_options)


class Adagrad(ComposedOptimizer):
    """Adagrad written from scratch (Duchi et al. 2011), equal to torch.optim.Adagrad.

    Update::

        sum_t = sum_{t-1} + g_t²                        (sum_0 = initial_accumulator_value)
        θ_t   = θ_{t-1} − lr/(1 + (t−1)·lr_decay) · g_t / (√sum_t + ε)

    State: ``sum``, ``step``. The lecture in the seed material uses ``lr=1``,
    ``lr_decay=1e-4``, ``eps=1e-7``; torch's default ε is 1e-10 — both work.

    Example:
        >>> opt = Adagrad(model.parameters(), lr=1.0, lr_decay=1e-4, eps=1e-7)
    """

    def __init__(self, params: Any, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        super().__init__(params, rule="adagrad", controller="constant", lr=lr, lr_decay=lr_decay,
                         weight_decay=weight_decay, initial_accumulator_value=initial_accumulator_value, eps=eps)
