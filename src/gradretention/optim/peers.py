"""Optimizers from other packages as registry names: the learning-rate-free peers and any class.

Three kinds of name resolve here, all with the ``name[key=value,...]`` grammar of
:mod:`~gradretention.optim.spec`:

* a curated name (:data:`PEERS`): ``prodigy``, ``schedulefree_adamw``, ``schedulefree_sgd``,
  ``dadapt_adam``, ``dadapt_sgd``, ``dog``, ``ldog``, ``lion`` — each the authors' own class
  from its PyPI package, with the defaults the authors recommend;
* ``pt:NAME`` — any optimizer of the ``pytorch-optimizer`` zoo (``pt:adabelief[lr=1e-3]``);
* ``MODULE:CLASS`` — any importable ``torch.optim.Optimizer`` subclass by path
  (``torch.optim:NAdam[lr=2e-3]``).

The packages are the optional extra ``gradretention[peers]``; they are imported only when a
peer is built, so this module (like all of ``optim``) imports torch alone. A missing package
is a clear error naming the extra. Hyperparameters are checked against the class signature
(an unknown name lists the valid ones) and, where the name is one of ours, against
:data:`~gradretention.optim.hyperparams.HYPERPARAMETER_RANGES`; the package's own checks run
in its constructor and their errors are re-raised naming the spec.

Learning-rate-free methods (``lr_free=True``: Prodigy, D-Adaptation, DoG) are run the way
their papers say: at ``lr = 1`` with no lr grid; their ``lr`` is a multiplier of the step size
``d`` they estimate, which :func:`peer_telemetry` reads back.

Example:
    >>> import torch
    >>> p = [torch.nn.Parameter(torch.zeros(2))]
    >>> type(create_peer("torch.optim:NAdam[lr=0.002]", p)).__name__
    'NAdam'
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

EXTRA = "peers"
INSTALL_HINT = f'pip install "gradretention[{EXTRA}]"'
ZOO_PREFIX = "pt:"


@dataclass(frozen=True)
class Peer:
    """One curated external optimizer: where it lives and how its authors run it."""

    name: str
    package: str  # the PyPI distribution
    module: str
    attr: str
    defaults: dict[str, Any]
    summary: str
    reference: str
    lr_free: bool = False  # tuned at lr = 1 with no grid, as its paper says
    telemetry_keys: tuple[str, ...] = ()  # param-group entries worth plotting like α
    eval_mode: bool = False  # needs optimizer.eval() around evaluation (Schedule-Free)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # documented ranges


PEERS: dict[str, Peer] = {peer.name: peer for peer in (
    Peer("prodigy", "prodigyopt", "prodigyopt", "Prodigy", {"lr": 1.0},
         "Prodigy: Adam whose step size d is estimated from the distance travelled",
         "Mishchenko & Defazio, Prodigy, ICML 2024 (arXiv:2306.06101)", lr_free=True, telemetry_keys=("d",),
         ranges={"lr": (0.0, float("inf")), "d_coef": (0.0, float("inf"))}),
    Peer("schedulefree_adamw", "schedulefree", "schedulefree", "AdamWScheduleFree", {"lr": 2.5e-3},
         "Schedule-Free AdamW: interpolation and averaging replace the lr schedule",
         "Defazio et al., The Road Less Scheduled, NeurIPS 2024 (arXiv:2405.15682)",
         telemetry_keys=("weight_sum",), eval_mode=True),
    Peer("schedulefree_sgd", "schedulefree", "schedulefree", "SGDScheduleFree", {"lr": 1.0},
         "Schedule-Free SGD with momentum 0.9",
         "Defazio et al., The Road Less Scheduled, NeurIPS 2024 (arXiv:2405.15682)",
         telemetry_keys=("weight_sum",), eval_mode=True),
    Peer("dadapt_adam", "dadaptation", "dadaptation", "DAdaptAdam", {"lr": 1.0},
         "D-Adaptation Adam: step size d from a lower bound on the distance to the solution",
         "Defazio & Mishchenko, Learning-Rate-Free Learning by D-Adaptation, ICML 2023 (arXiv:2301.07733)",
         lr_free=True, telemetry_keys=("d",)),
    Peer("dadapt_sgd", "dadaptation", "dadaptation", "DAdaptSGD", {"lr": 1.0},
         "D-Adaptation SGD", "Defazio & Mishchenko, ICML 2023 (arXiv:2301.07733)", lr_free=True,
         telemetry_keys=("d",)),
    Peer("dog", "dog-optimizer", "dog", "DoG", {"lr": 1.0},
         "DoG: step size = max distance from the start / sqrt(sum of squared gradient norms)",
         "Ivgi, Hinder & Carmon, DoG is SGD's Best Friend, ICML 2023 (arXiv:2302.12022)", lr_free=True,
         telemetry_keys=("eta",)),
    Peer("ldog", "dog-optimizer", "dog", "LDoG", {"lr": 1.0}, "Layer-wise DoG",
         "Ivgi, Hinder & Carmon, ICML 2023 (arXiv:2302.12022)", lr_free=True, telemetry_keys=("eta",)),
    Peer("lion", "pytorch-optimizer", "pytorch_optimizer", "Lion", {"lr": 1e-4},
         "Lion: sign of an interpolated momentum (lr ~ 3-10x smaller than AdamW's)",
         "Chen et al., Symbolic Discovery of Optimization Algorithms, NeurIPS 2023 (arXiv:2302.06675)"),
)}  # fmt: skip


class PeerError(ValueError):
    """An external optimizer cannot be resolved or built; the message says why and what to do."""


def is_external_name(name: str) -> bool:
    """``True`` for a curated peer, a ``pt:`` zoo name or a ``module:Class`` path."""
    return name in PEERS or ":" in name


def resolve_class(name: str) -> type[torch.optim.Optimizer]:
    """The optimizer class behind a curated, ``pt:`` or ``module:Class`` name.

    Raises:
        PeerError: the package is missing (naming the extra), the path or zoo name is unknown
            (with a did-you-mean), or the object is not a ``torch.optim.Optimizer`` subclass.
    """
    if name in PEERS:
        peer = PEERS[name]
        return _checked_class(getattr(_import(peer.module, peer.package), peer.attr), name)
    if name.startswith(ZOO_PREFIX):
        return _zoo_class(name[len(ZOO_PREFIX):])
    module_path, sep, attr = name.partition(":")
    if not sep or not module_path or not attr:
        raise PeerError(f"Malformed optimizer path {name!r}; expected MODULE:CLASS, e.g. 'torch.optim:NAdam'")
    module = _import(module_path, None)
    if not hasattr(module, attr):
        classes = [n for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, torch.optim.Optimizer)]
        close = difflib.get_close_matches(attr, classes, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise PeerError(f"Module {module_path!r} has no attribute {attr!r}.{hint} "
                        f"Optimizer classes there: {', '.join(sorted(classes)) or 'none'}")
    return _checked_class(getattr(module, attr), name)


def peer_defaults(name: str) -> dict[str, Any]:
    """Every keyword hyperparameter the class accepts with the default we use (the authors')."""
    cls = resolve_class(name)
    skip = {"self", "params", "foreach", "fused", "capturable", "differentiable", "fsdp_in_use", "kwargs"}
    defaults = {key: p.default for key, p in inspect.signature(cls.__init__).parameters.items()
                if key not in skip and p.default is not p.empty and p.kind is not p.VAR_KEYWORD}
    if name in PEERS:
        defaults.update(PEERS[name].defaults)
    return defaults


def create_peer(spec_name: str, params: Any, values: dict[str, Any] | None = None, spec: str = "") -> torch.optim.Optimizer:
    """Build the external optimizer ``spec_name`` with hyperparameters ``values``.

    Raises:
        PeerError: unknown name or hyperparameter (listing the valid ones), a value outside a
            documented range, a missing package, or the package's own refusal (naming the spec).
    """
    from gradretention.optim.hyperparams import HYPERPARAMETER_RANGES  # noqa: PLC0415

    values = dict(values or {})
    cls, defaults = resolve_class(spec_name), peer_defaults(spec_name)
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise PeerError(f"Unknown hyperparameter(s) {', '.join(unknown)} for optimizer {spec_name!r}; "
                        f"valid: {', '.join(sorted(defaults))}")
    ranges = PEERS[spec_name].ranges if spec_name in PEERS else {}
    for key, value in values.items():
        if key in ranges:
            low, high = ranges[key]
            if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
                raise PeerError(f"Invalid {key} value: {value!r} (valid: in [{low:g}, {high:g}])")
        elif key in HYPERPARAMETER_RANGES and key in ("lr", "eps", "weight_decay", "betas"):
            check, text = HYPERPARAMETER_RANGES[key]
            if not check(value):
                raise PeerError(f"Invalid {key} value: {value!r} (valid: {text})")
    try:
        return cls(params, **{**defaults, **values})
    except (ValueError, TypeError) as exc:
        raise PeerError(f"{cls.__module__}.{cls.__qualname__} refused {spec or spec_name!r}: {exc}") from exc


def peer_info(name: str) -> dict[str, Any]:
    """Class, package, version, defaults and paper of an external name, for provenance and ``list``."""
    cls = resolve_class(name)
    peer = PEERS.get(name)
    package = peer.package if peer else _distribution(cls.__module__)
    return {
        "name": name, "class": f"{cls.__module__}.{cls.__qualname__}", "defaults": peer_defaults(name),
        "family": "lr-free" if peer and peer.lr_free else "external", "package": package or "",
        "version": _version(package), "summary": peer.summary if peer else (inspect.getdoc(cls) or "").split("\n")[0],
        "reference": peer.reference if peer else "", "lr_free": bool(peer and peer.lr_free),
        "eval_mode": bool(peer and peer.eval_mode) or _has_eval_mode(cls),
    }  # fmt: skip


def peer_telemetry(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """Plain floats worth plotting: d of Prodigy / D-Adaptation, DoG's η, Schedule-Free's weight sum.

    Read only when asked (each is a host read where the value is a device tensor).
    """
    keys = next((p.telemetry_keys for p in PEERS.values() if type(optimizer).__name__ == p.attr
                 and type(optimizer).__module__.startswith(p.module)), ())  # fmt: skip
    out: dict[str, float] = {}
    for index, group in enumerate(optimizer.param_groups):
        for key in keys:
            value = group.get(key)
            if isinstance(value, list):  # DoG keeps one η per tensor: the mean summarises the group
                value = sum(float(v) for v in value) / len(value) if value else None
            if value is not None:
                out[key if index == 0 else f"{key}_{index}"] = float(value)
    return out


def telemetry_of(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """Any optimizer's telemetry as plain floats: ours from ``telemetry()``, a peer's from its state."""
    own = getattr(optimizer, "telemetry", None)
    if callable(own):
        return {key: float(value) for key, value in own().items()}
    return peer_telemetry(optimizer)


def uses_eval_mode(optimizer: torch.optim.Optimizer) -> bool:
    """``True`` when the optimizer must be put in eval mode before its weights are evaluated."""
    return _has_eval_mode(type(optimizer))


def _has_eval_mode(cls: type) -> bool:
    # Schedule-Free's contract: .train() / .eval() methods that swap the evaluated (averaged) iterate in.
    return callable(getattr(cls, "eval", None)) and callable(getattr(cls, "train", None))


def _zoo_class(name: str) -> type[torch.optim.Optimizer]:
    zoo = _import("pytorch_optimizer", "pytorch-optimizer")
    supported = [n.lower() for n in zoo.get_supported_optimizers()]
    if name.lower() not in supported:
        close = difflib.get_close_matches(name.lower(), supported, n=3)
        hint = f" Did you mean {' or '.join(ZOO_PREFIX + c for c in close)}?" if close else ""
        raise PeerError(f"Unknown pytorch-optimizer name {name!r}.{hint} "
                        f"Valid: {', '.join(ZOO_PREFIX + n for n in sorted(supported))}")
    return _checked_class(zoo.load_optimizer(name.lower()), ZOO_PREFIX + name)


def _import(module: str, package: str | None) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if package is not None:
            raise PeerError(f"Optimizer package {package!r} is not installed: {INSTALL_HINT} "
                            f"(or pip install {package})") from exc
        raise PeerError(f"Cannot import module {module!r} ({exc}); check the MODULE:CLASS path "
                        "and that its package is installed") from exc


def _checked_class(obj: Any, name: str) -> type[torch.optim.Optimizer]:
    if not (inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)):
        raise PeerError(f"{name!r} is not a torch.optim.Optimizer subclass (got {obj!r})")
    return obj


def _distribution(module: str) -> str | None:
    top = module.split(".")[0]
    names = importlib.metadata.packages_distributions().get(top, [])
    return names[0] if names else None


def _version(package: str | None) -> str:
    if not package:
        return ""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""
