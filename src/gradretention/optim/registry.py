"""The optimizer registry: one table of names → factories, defaults and references.

``create_optimizer("adam_hd[lr=0.001,hypergrad_lr=1e-07]", model.parameters())`` builds
any registered optimizer from a (parametrized) name; keyword overrides win over the spec,
which wins over the entry's defaults.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import torch

from gradretention.optim import peers
from gradretention.optim.composed import ComposedOptimizer
from gradretention.optim.contract import TORCH_KEYWORDS
from gradretention.optim.controllers.hypergradient import HypergradientController
from gradretention.optim.hyperparams import check_hyperparameters
from gradretention.optim.rules import RULE_NAMES, make_rule
from gradretention.optim.spec import format_spec, parse_spec

HD_PAPER = "Baydin et al., Online Learning Rate Adaptation with Hypergradient Descent, ICLR 2018 (arXiv:1703.04782)"
HD_VARIANTS = "Hypergradient variants: momentum / Adam as the lr optimizer (seed 003; see specs/algorithms.md §2.1)"


@dataclass(frozen=True)
class OptimizerEntry:
    """One registry row. ``defaults`` lists every accepted hyperparameter with its default."""

    name: str
    factory: Callable[..., torch.optim.Optimizer]
    defaults: dict[str, Any]
    summary: str
    reference: str
    family: str
    cls: type = field(default=torch.optim.Optimizer)


_REGISTRY: dict[str, OptimizerEntry] = {}


def register_optimizer(entry: OptimizerEntry) -> None:
    """Add ``entry``; a name may be registered once."""
    if entry.name in _REGISTRY:
        raise ValueError(f"Optimizer {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry


def available_optimizers() -> list[str]:
    """All registered names, baselines first, in registration order."""
    return list(_REGISTRY)


def get_entry(name: str) -> OptimizerEntry:
    """The entry for ``name``; ``ValueError`` with a did-you-mean and the valid names otherwise.

    External names (a curated peer, ``pt:NAME``, ``MODULE:CLASS``: :mod:`~gradretention.optim.peers`)
    get an entry built on the fly, so that every caller treats them like ours.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if peers.is_external_name(name):
        return _peer_entry(name)
    close = difflib.get_close_matches(name, [*_REGISTRY, *peers.PEERS], n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"Unknown optimizer {name!r}.{hint} Valid names: {', '.join(sorted(_REGISTRY))}; "
                     f"external: {', '.join(peers.PEERS)}, pt:NAME (pytorch-optimizer), MODULE:CLASS")


def optimizer_info(name: str) -> dict[str, Any]:
    """Class, defaults, family, summary and paper of a registered optimizer."""
    entry = get_entry(parse_spec(name)[0])
    if peers.is_external_name(entry.name):
        return peers.peer_info(entry.name)
    return {"name": entry.name, "class": f"{entry.cls.__module__}.{entry.cls.__qualname__}",
            "defaults": dict(entry.defaults), "family": entry.family, "summary": entry.summary,
            "reference": entry.reference}


def create_optimizer(spec: str, params: Any, **overrides: Any) -> torch.optim.Optimizer:
    """Build the optimizer named by ``spec`` over ``params``.

    Raises:
        ValueError: unknown name (with a did-you-mean), unknown hyperparameter (listing the
            valid ones) or a value out of range (naming it, its value and the range).
    """
    name, values = parse_spec(spec)
    entry = get_entry(name)
    # lr=None means "the default" (the harness passes it when no grid is set); any other None is a value.
    values.update({key: value for key, value in overrides.items() if value is not None or key != "lr"})
    unknown = sorted(set(values) - set(entry.defaults))
    if unknown:
        raise ValueError(f"Unknown hyperparameter(s) {', '.join(unknown)} for optimizer {name!r}; "
                         f"valid: {', '.join(sorted(entry.defaults))}")
    check_hyperparameters(values)
    return entry.factory(params, **{**entry.defaults, **values})


def available_peers() -> list[str]:
    """The curated external names (:data:`~gradretention.optim.peers.PEERS`), installed or not."""
    return list(peers.PEERS)


def _peer_entry(name: str) -> OptimizerEntry:
    info = peers.peer_info(name)
    return OptimizerEntry(name, partial(_build_peer, name), info["defaults"], info["summary"], info["reference"],
                          info["family"], peers.resolve_class(name))


def _build_peer(name: str, params: Any, **values: Any) -> torch.optim.Optimizer:
    return peers.create_peer(name, params, values)


def canonical_spec(spec: str) -> str:
    """``spec`` with its keys sorted and values normalised, for results tables and legends."""
    name, values = parse_spec(spec)
    return format_spec(name, values)


def _torch_defaults(cls: type, **changes: Any) -> dict[str, Any]:
    """The keyword defaults of a torch.optim class, minus implementation switches."""
    # torch's implementation keywords (foreach, maximize, capturable, differentiable, fused) stay: they
    # are accepted and passed through; AdamW's decoupled_weight_decay would make Adam another optimizer.
    skip = {"self", "params", "decoupled_weight_decay"}
    signature = inspect.signature(cls.__init__)
    defaults = {name: p.default for name, p in signature.parameters.items()
                if name not in skip and p.default is not p.empty}
    defaults.update(changes)
    return defaults


def _register_baselines() -> None:
    optim = torch.optim
    rows = [
        ("sgd", optim.SGD, {"lr": 1e-2}, "torch.optim.SGD (no momentum)", "Robbins & Monro 1951"),
        ("momentum", optim.SGD, {"lr": 1e-2, "momentum": 0.9}, "torch.optim.SGD, heavy-ball momentum 0.9",
         "Polyak 1964"),
        ("nesterov", optim.SGD, {"lr": 1e-2, "momentum": 0.9, "nesterov": True},
         "torch.optim.SGD, Nesterov momentum 0.9", "Sutskever et al., ICML 2013"),
        ("adagrad", optim.Adagrad, {}, "torch.optim.Adagrad", "Duchi et al., JMLR 2011"),
        ("rmsprop", optim.RMSprop, {"lr": 1e-3}, "torch.optim.RMSprop", "Tieleman & Hinton 2012"),
        ("adam", optim.Adam, {}, "torch.optim.Adam", "Kingma & Ba, ICLR 2015"),
        ("adamw", optim.AdamW, {}, "torch.optim.AdamW", "Loshchilov & Hutter, ICLR 2019"),
    ]
    for name, cls, changes, summary, reference in rows:
        defaults = _torch_defaults(cls, **changes)
        register_optimizer(OptimizerEntry(name, cls, defaults, summary, reference, "baseline", cls))


# Per base rule: initial α and β. Adaptive rules give h ~ Σ|g| (large), so β is small,
# as in the paper's Adam-HD; Adam on α moves α by ≈β per step, so that lop gets its own β.
_HD_DEFAULTS: dict[str, tuple[float, float, float]] = {
    # rule: (lr, hypergrad_lr for lop sgd/sgdn, hypergrad_lr for lop adam)
    "sgd": (1e-2, 1e-3, 1e-5),
    "sgdn": (1e-2, 1e-3, 1e-5),
    "adam": (1e-3, 1e-7, 1e-6),
    "adagrad": (1e-2, 1e-7, 1e-5),
    "rmsprop": (1e-3, 1e-7, 1e-6),
}


def _register_hypergradient_family() -> None:
    for rule_name in RULE_NAMES:
        for lop in ("sgd", "sgdn", "adam"):
            name = f"{rule_name}_hd" if lop == "sgd" else f"{rule_name}_hd_{lop}"
            lr, beta, beta_adam = _HD_DEFAULTS[rule_name]
            controller = HypergradientController(lop)
            defaults = {"lr": lr, "fused": None, "compiled": None, **TORCH_KEYWORDS, **make_rule(rule_name).defaults,
                        **controller.defaults,
                        "hypergrad_lr": beta_adam if lop == "adam" else beta}
            factory = partial(ComposedOptimizer, rule=rule_name, controller="hypergradient", lr_optimizer=lop)
            summary = f"{rule_name} base rule, α driven by hypergradient descent with {lop} as the lr optimizer"
            register_optimizer(OptimizerEntry(name, factory, defaults, summary,
                                              HD_PAPER if lop == "sgd" else HD_VARIANTS, "hypergradient",
                                              ComposedOptimizer))


_register_baselines()
_register_hypergradient_family()


RETENTION_SEED = "GradRetentionNet (seed 000): RescaledSGD, gradient retention; see specs/algorithms.md §3"
ENHANCED_SEED = "GradRetentionNet (seed 001): EnhancedSGD, Q-learning control; see specs/algorithms.md §4"
VARIANCE_SEED = "Gradient-variance-adaptive learning rate (seed 002 experiment plan); see specs/algorithms.md §2.2"
# Initial α per base rule for the variance family, each checked to bring the registry logistic regression
# below 0.4 in 200 steps (Adam at 1e-3 stays at 0.44 there, so adam_var starts at 1e-2).
_VAR_LRS: dict[str, float] = {"sgd": 1e-2, "sgdn": 1e-2, "adam": 1e-2, "adagrad": 1e-2, "rmsprop": 1e-3}


def _register_issue3() -> None:
    from gradretention.optim.controllers.variance import VarianceController  # noqa: PLC0415
    from gradretention.optim.algorithms.enhanced import EnhancedSGD  # noqa: PLC0415
    from gradretention.optim.algorithms.retention import RescaledSGD  # noqa: PLC0415

    # A sign update moves each weight by at most lr per step: the peak is 1e-2 (class default 1e-3,
    # the reference's) so that registry defaults converge within a few hundred steps.
    register_optimizer(OptimizerEntry(
        "rescaled_sgd", RescaledSGD, _torch_defaults(RescaledSGD, lr=1e-2, fused=None, compiled=None),
        "SGD on a retained (decaying, never reset) gradient with per-element rates in [base_lr, lr]",
        RETENTION_SEED, "retention", RescaledSGD))
    register_optimizer(OptimizerEntry(
        "enhanced_sgd", EnhancedSGD, _torch_defaults(EnhancedSGD, fused=None),
        "Momentum SGD with variance clipping; tabular Q-learning nudges lr, momentum and gradient scale",
        ENHANCED_SEED, "q-learning", EnhancedSGD))
    for rule_name in ("adam", "sgd", "sgdn", "rmsprop", "adagrad"):
        defaults = {"lr": _VAR_LRS[rule_name], "fused": None, "compiled": None, **TORCH_KEYWORDS,
                    **make_rule(rule_name).defaults, **VarianceController().defaults}
        factory = partial(ComposedOptimizer, rule=rule_name, controller="variance")
        summary = f"{rule_name} base rule, α scaled by the relative change of the smoothed gradient variance"
        register_optimizer(OptimizerEntry(f"{rule_name}_var", factory, defaults, summary, VARIANCE_SEED,
                                          "variance", ComposedOptimizer))


_register_issue3()


LOG_HD = ("Hypergradient on log α (issue 19): Baydin et al. 2018's normalised HDM taken exactly on log α, a cosine "
          "offset against short-horizon bias (Wu et al., ICLR 2018) and a loss-spike safeguard")


def _register_log_hypergradient() -> None:
    from gradretention.optim.controllers.log_hypergradient import LogHypergradientController  # noqa: PLC0415

    for rule_name, lr in (("sgdn", 1e-2), ("adam", 1e-3)):
        defaults = {"lr": lr, "fused": None, "compiled": None, **TORCH_KEYWORDS, **make_rule(rule_name).defaults,
                    **LogHypergradientController.defaults}
        factory = partial(ComposedOptimizer, rule=rule_name, controller="log_hypergradient")
        summary = f"{rule_name} base rule, log α moved by β(cos(g_t, d_t-1) + c), halved on a loss spike"
        register_optimizer(OptimizerEntry(f"{rule_name}_loghd", factory, defaults, summary, LOG_HD, "hypergradient",
                                          ComposedOptimizer))


_register_log_hypergradient()
