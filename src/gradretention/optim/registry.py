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
from gradretention.optim.controllers import make_controller
from gradretention.optim.hyperparams import HYPERPARAMETER_RANGES, check_hyperparameters
from gradretention.optim.rules import make_rule
from gradretention.optim.spec import format_spec, parse_spec

HD_PAPER = "Baydin et al., Online Learning Rate Adaptation with Hypergradient Descent, ICLR 2018 (arXiv:1703.04782)"
HD_VARIANTS = "Hypergradient variants: momentum / Adam as the lr optimizer (seed 003; see specs/algorithms.md §2.1)"
RETENTION_SEED = "GradRetentionNet (seed 000): RescaledSGD, gradient retention; see specs/algorithms.md §3"
ENHANCED_SEED = "GradRetentionNet (seed 001): EnhancedSGD, Q-learning control; see specs/algorithms.md §4"
VARIANCE_SEED = "Gradient-variance-adaptive learning rate (seed 002 experiment plan); see specs/algorithms.md §2.2"
LOG_HD = ("Hypergradient on log α (issue 19): Baydin et al. 2018's normalised HDM taken exactly on log α, a cosine "
          "offset against short-horizon bias (Wu et al., ICLR 2018) and a loss-spike safeguard")

LOG_RPROP = ("Rprop on log α (issue 19): Riedmiller & Braun, ICNN 1993 on the sign of Baydin et al. 2018's normalised "
             "hypergradient (a sign form of Chandra et al., NeurIPS 2022's stacked hyperoptimizers), with a LARS-like "
             "trust-ratio cap (You et al. 2017)")

LOG_RMS_HD = ("RMS-normalised hypergradient on log α (issue 19): Baydin et al. 2018's normalised hypergradient over its "
              "running RMS (Kingma & Ba 2015), with LRPROP's trust cap and a loss-spike halving on 2 consecutive spikes")
STACKED_HD = ("Stacked hyperoptimizer on log α (issue 19): the RMS-normalised log-HD law with its step size adapted by "
              "its own hypergradient (Chandra et al., NeurIPS 2022, 'Gradient Descent: The Ultimate Optimizer')")
Z_PROP = ("Rprop on log α behind a significance dead zone (issue 19): the sign of the cosine's running mean, only "
          "beyond 2 standard errors (Pflug 1983; Lang et al., NeurIPS 2019), and a halving only on 2 consecutive spikes")

ALL_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class Capabilities:
    """What an optimizer claims, like torch's ``OptimizerInfo``; the generic tests hold every claim.

    ``dtypes``: param dtypes it steps (each implementation equal to the reference loop in each);
    ``fused``: a fast path besides the reference loop (``fused=None``/``True`` against ``fused=False``,
    or torch's ``foreach``/``fused`` for the baselines), in float32 and float64 — torch's own
    ``SGD(fused=True)`` takes its broken CPU half kernel, so half precision never claims it; ``compiled``: Inductor kernels
    (``compiled=True``, float32/float64); ``complex``: complex params step with the right maths
    (else they are refused at construction); ``needs_loss``: the step reads the loss
    (``step(closure)`` or ``step(loss=...)``); ``device_lr``: α is a device scalar, never read back.
    """

    dtypes: tuple[torch.dtype, ...] = ALL_DTYPES
    fused: bool = False
    compiled: bool = False
    complex: bool = False
    needs_loss: bool = False
    device_lr: bool = False


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
    capabilities: Capabilities = field(default_factory=Capabilities)

    @property
    def ranges(self) -> dict[str, str]:
        """The valid range of each hyperparameter, as the errors state it (one table: :mod:`.hyperparams`)."""
        return {key: HYPERPARAMETER_RANGES[key][1] for key in self.defaults if key in HYPERPARAMETER_RANGES}


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
            "reference": entry.reference, "ranges": entry.ranges, "capabilities": entry.capabilities}


def resolved_hyperparameters(spec: str) -> dict[str, Any]:
    """Every hyperparameter an optimizer built from ``spec`` runs with: the row's defaults, the spec's values over them.

    Two specs that resolve alike run the same maths; one spec resolves differently after a default
    changes (the harness compares this to what a stored run recorded before reusing it).

    Raises:
        ValueError: unknown name or hyperparameter, as :func:`create_optimizer`.
    """
    return _resolve(*parse_spec(spec))


def _resolve(name: str, values: dict[str, Any]) -> dict[str, Any]:
    entry = get_entry(name)
    unknown = sorted(set(values) - set(entry.defaults))
    if unknown:
        raise ValueError(f"Unknown hyperparameter(s) {', '.join(unknown)} for optimizer {name!r}; "
                         f"valid: {', '.join(sorted(entry.defaults))}")
    return {**entry.defaults, **values}


def create_optimizer(spec: str, params: Any, **overrides: Any) -> torch.optim.Optimizer:
    """Build the optimizer named by ``spec`` over ``params``.

    Raises:
        ValueError: unknown name (with a did-you-mean), unknown hyperparameter (listing the
            valid ones) or a value out of range (naming it, its value and the range).
    """
    name, values = parse_spec(spec)
    # lr=None means "the default" (the harness passes it when no grid is set); any other None is a value.
    values.update({key: value for key, value in overrides.items() if value is not None or key != "lr"})
    settings = _resolve(name, values)
    check_hyperparameters(values)
    return get_entry(name).factory(params, **settings)


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


# --- The table. One row per torch baseline, per base rule, per controller, per own algorithm. ---

BASELINES = (
    # name, class, changed defaults, torch fused kernel, summary, reference
    ("sgd", torch.optim.SGD, {"lr": 1e-2}, True, "torch.optim.SGD (no momentum)", "Robbins & Monro 1951"),
    ("momentum", torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}, True, "torch.optim.SGD, heavy-ball momentum 0.9",
     "Polyak 1964"),
    ("nesterov", torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9, "nesterov": True}, True,
     "torch.optim.SGD, Nesterov momentum 0.9", "Sutskever et al., ICML 2013"),
    ("adagrad", torch.optim.Adagrad, {}, True, "torch.optim.Adagrad", "Duchi et al., JMLR 2011"),
    ("rmsprop", torch.optim.RMSprop, {"lr": 1e-3}, False, "torch.optim.RMSprop", "Tieleman & Hinton 2012"),
    ("adam", torch.optim.Adam, {}, True, "torch.optim.Adam", "Kingma & Ba, ICLR 2015"),
    ("adamw", torch.optim.AdamW, {}, True, "torch.optim.AdamW", "Loshchilov & Hutter, ICLR 2019"),
)

# Per base rule: initial α and β under each controller. Adaptive rules give h ~ Σ|g| (large), so
# β is small, as in the paper's Adam-HD; Adam on α moves α by ≈β per step, so that lop gets its own
# β. The variance family's α was checked to bring the registry logistic regression below 0.4 in
# 200 steps (Adam at 1e-3 stays at 0.44 there, so adam_var starts at 1e-2).
HDM = {"hypergrad_lr": 0.02, "multiplicative": True}
LRPROP = {"trust_ratio": 0.05}
# Adam's row halves α only on 2 consecutive loss spikes (issue 19): a chance minibatch spike no longer halves α for
# good; fixed from the mechanism (independent minibatches do not spike twice in a row by chance, a divergence does),
# never tuned per task. Nesterov's row keeps 1: its overshoots alternate (loss up, down, up), which a patience of 2
# lets through: on the registry's Rosenbrock test (300 steps from (-1.5, 2), loss 12.5) sgdn_lrprop[spike_patience=2]
# ends at 10.5 against 1.0 with 1, after an excursion to 2.2e4, and ends higher from 2 of 3 other starts.
LRPROP_ADAM = {**LRPROP, "spike_patience": 2}
# One setting for every task (never per task): see each controller's module docstring.
RMSHD = {"spike_patience": 2, "trust_ratio": 0.05}
STACKHD = {"hyper_hypergrad_lr": 0.2, "spike_patience": 2, "trust_ratio": 0.05}
ZPROP = {"significance": 2.0, "spike_patience": 2, "trust_ratio": 0.05}
RULE_ROWS: dict[str, dict[str, dict[str, float]]] = {
    # rule: {controller row: the defaults it changes}; a rule without a row's key has no such name
    "sgd": {"hd": {"lr": 1e-2, "hypergrad_lr": 1e-3}, "hd_adam": {"lr": 1e-2, "hypergrad_lr": 1e-5}, "var": {"lr": 1e-2}},
    "sgdn": {"hd": {"lr": 1e-2, "hypergrad_lr": 1e-3}, "hd_adam": {"lr": 1e-2, "hypergrad_lr": 1e-5}, "var": {"lr": 1e-2},
             "loghd": {"lr": 1e-2}, "hdm": {"lr": 1e-2, **HDM}, "lrprop": {"lr": 1e-2, **LRPROP},
             "rmshd": {"lr": 1e-2, **RMSHD}, "stackhd": {"lr": 1e-2, **STACKHD}, "zprop": {"lr": 1e-2, **ZPROP}},
    "adam": {"hd": {"lr": 1e-3, "hypergrad_lr": 1e-7}, "hd_adam": {"lr": 1e-3, "hypergrad_lr": 1e-6}, "var": {"lr": 1e-2},
             "loghd": {"lr": 1e-3}, "hdm": {"lr": 1e-3, **HDM}, "lrprop": {"lr": 1e-3, **LRPROP_ADAM},
             "rmshd": {"lr": 1e-3, **RMSHD}, "stackhd": {"lr": 1e-3, **STACKHD}, "zprop": {"lr": 1e-3, **ZPROP}},
    "adagrad": {"hd": {"lr": 1e-2, "hypergrad_lr": 1e-7}, "hd_adam": {"lr": 1e-2, "hypergrad_lr": 1e-5},
                "var": {"lr": 1e-2}},
    "rmsprop": {"hd": {"lr": 1e-3, "hypergrad_lr": 1e-7}, "hd_adam": {"lr": 1e-3, "hypergrad_lr": 1e-6},
                "var": {"lr": 1e-3}},
}

NO_FLOAT16: tuple[torch.dtype, ...] = (torch.float32, torch.float64, torch.bfloat16)
"""Adam's default ε = 1e-8 underflows float16 (smallest subnormal 6e-8): √v̂ + ε is 0 for a zero
second moment and the step divides by it, so the Adam rows do not claim float16."""
RULE_DTYPES: dict[str, tuple[torch.dtype, ...]] = {"adam": NO_FLOAT16}

CONTROLLER_ROWS = (
    # name suffix, controller, its options, the rule row's defaults it takes, family, reference, summary
    ("hd", "hypergradient", {"lr_optimizer": "sgd"}, "hd", "hypergradient", HD_PAPER,
     "{rule} base rule, α driven by hypergradient descent with sgd as the lr optimizer"),
    ("hd_sgdn", "hypergradient", {"lr_optimizer": "sgdn"}, "hd", "hypergradient", HD_VARIANTS,
     "{rule} base rule, α driven by hypergradient descent with sgdn as the lr optimizer"),
    ("hd_adam", "hypergradient", {"lr_optimizer": "adam"}, "hd_adam", "hypergradient", HD_VARIANTS,
     "{rule} base rule, α driven by hypergradient descent with adam as the lr optimizer"),
    ("var", "variance", {}, "var", "variance", VARIANCE_SEED,
     "{rule} base rule, α scaled by the relative change of the smoothed gradient variance"),
    ("loghd", "log_hypergradient", {}, "loghd", "hypergradient", LOG_HD,
     "{rule} base rule, log α moved by β(cos(g_t, d_t-1) + c), halved on a loss spike"),
    ("hdm", "hypergradient", {"lr_optimizer": "sgd"}, "hdm", "hypergradient", HD_PAPER,
     "{rule} base rule, α multiplied by 1 + β cos(g_t, d_t-1) (the paper's HDM)"),
    ("lrprop", "log_rprop", {}, "lrprop", "hypergradient", LOG_RPROP,
     "{rule} base rule, log α moved by Rprop on the sign of cos(g_t, d_t-1), capped at τ‖θ‖/‖d‖, halved on P "
     "consecutive loss spikes (adam: 2, sgdn: 1)"),
    ("rmshd", "log_rms_hypergradient", {}, "rmshd", "hypergradient", LOG_RMS_HD,
     "{rule} base rule, log α moved by β cos(g_t, d_t-1) / RMS(cos), capped at τ‖θ‖/‖d‖"),
    ("stackhd", "log_rms_hypergradient", {}, "stackhd", "hypergradient", STACKED_HD,
     "{rule} base rule, log α moved by κ cos/RMS(cos), log κ by γ times its own normalised hypergradient"),
    ("zprop", "log_rprop", {}, "zprop", "hypergradient", Z_PROP,
     "{rule} base rule, Rprop on log α from the sign of the cosine's mean beyond 2 standard errors"),
)


def _torch_defaults(cls: type, **changes: Any) -> dict[str, Any]:
    """The keyword defaults of a class's constructor, with ``changes``."""
    # torch's implementation keywords (foreach, maximize, capturable, differentiable, fused) stay: they
    # are accepted and passed through; AdamW's decoupled_weight_decay would make Adam another optimizer.
    skip = {"self", "params", "decoupled_weight_decay"}
    signature = inspect.signature(cls.__init__)
    defaults = {name: p.default for name, p in signature.parameters.items()
                if name not in skip and p.default is not p.empty}
    defaults.update(changes)
    return defaults


def _composed_entry(rule_name: str, row: tuple) -> OptimizerEntry:
    suffix, controller_name, options, defaults_row, family, reference, summary = row
    rule, controller = make_rule(rule_name), make_controller(controller_name, **options)
    defaults = {"lr": 1e-3, "fused": None, "compiled": None, **TORCH_KEYWORDS, **rule.defaults,
                **controller.defaults, **RULE_ROWS[rule_name][defaults_row]}
    capabilities = Capabilities(RULE_DTYPES.get(rule_name, ALL_DTYPES), fused=rule.fused, compiled=True,
                                needs_loss=controller.needs_loss, device_lr=controller.device_lr)
    factory = partial(ComposedOptimizer, rule=rule_name, controller=controller_name, **options)
    return OptimizerEntry(f"{rule_name}_{suffix}", factory, defaults, summary.format(rule=rule_name), reference,
                          family, ComposedOptimizer, capabilities)


def _composed_rows(rows: tuple) -> list[OptimizerEntry]:
    """Every (rule, controller row) pair the rule table gives defaults for, rule by rule."""
    return [_composed_entry(rule, row) for rule in RULE_ROWS for row in rows if row[3] in RULE_ROWS[rule]]


def _table() -> list[OptimizerEntry]:
    """Every registered optimizer, baselines first."""
    from gradretention.optim.algorithms.enhanced import EnhancedSGD  # noqa: PLC0415
    from gradretention.optim.algorithms.retention import RescaledSGD  # noqa: PLC0415

    rows = [OptimizerEntry(name, cls, _torch_defaults(cls, **changes), summary, reference, "baseline", cls,
                           Capabilities(NO_FLOAT16 if cls in (torch.optim.Adam, torch.optim.AdamW) else ALL_DTYPES,
                                        fused=fused, complex=True))
            for name, cls, changes, fused, summary, reference in BASELINES]
    rows += _composed_rows(CONTROLLER_ROWS[:3])
    # A sign update moves each weight by at most lr per step: the peak is 1e-2 (class default 1e-3,
    # the reference's) so that registry defaults converge within a few hundred steps.
    rows.append(OptimizerEntry(
        "rescaled_sgd", RescaledSGD, _torch_defaults(RescaledSGD, lr=1e-2), "SGD on a retained (decaying, never "
        "reset) gradient with per-element rates in [base_lr, lr]", RETENTION_SEED, "retention", RescaledSGD,
        Capabilities(fused=True, compiled=True)))
    rows.append(OptimizerEntry(
        "enhanced_sgd", EnhancedSGD, _torch_defaults(EnhancedSGD), "Momentum SGD with variance clipping; tabular "
        "Q-learning nudges the lr from advantage rewards (reward=spec: the seed's controller, which also nudges "
        "momentum and gradient scale)", ENHANCED_SEED, "q-learning", EnhancedSGD,
        Capabilities(fused=True, compiled=True, needs_loss=True)))
    # The seed's EnhancedSGD as specs §4 states it: its controller and its preprocessing (issue 19 changed both defaults).
    rows.append(OptimizerEntry(
        "enhanced_sgd_spec", EnhancedSGD, _torch_defaults(EnhancedSGD, reward="spec", centering=True),
        "EnhancedSGD as seed 001 specifies it: matrices' gradients centred, 3σ clip, noise; the spec's Q-learner "
        "nudges lr, momentum and gradient scale", ENHANCED_SEED, "q-learning", EnhancedSGD,
        Capabilities(fused=True, compiled=True, needs_loss=True)))
    rows += _composed_rows(CONTROLLER_ROWS[3:4]) + _composed_rows(CONTROLLER_ROWS[4:])
    return rows


for _entry in _table():
    register_optimizer(_entry)
