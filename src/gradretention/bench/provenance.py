"""Where a result came from: package, git commit, torch, device, platform, Python.

Every stored run carries these strings so that a number in a report can be traced back
to the code and machine that produced it (benchopt keeps the same columns).
"""

from __future__ import annotations

import functools
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import gradretention
from gradretention.optim import optimizer_info, resolved_hyperparameters

PROVENANCE_KEYS: tuple[str, ...] = (
    "package_version",
    "git_commit",
    "torch_version",
    "device",
    "platform",
    "python_version",
    "optimizer_package",
    "optimizer_settings",
)

UNKNOWN = "unknown"


def collect_provenance(device: str, optimizer: str = "", lr: float | None = None) -> dict[str, str]:
    """Describe the code and machine a run is executed on.

    Never fails: anything that cannot be determined (no git checkout, no ``git``
    binary, torch metadata missing) is reported as ``"unknown"``.

    Args:
        device: The torch device the run uses, e.g. ``"cpu"`` or ``"cuda:0"``.
        optimizer: The run's optimizer spec; its package and version become
            ``optimizer_package`` (``"prodigyopt 1.1.2"``, ``"gradretention 0.1.0"``, ``"torch 2.13.0"``),
            and its resolved hyperparameters ``optimizer_settings`` (:func:`optimizer_settings`).
        lr: The run's lr (None: the spec's own), part of ``optimizer_settings``.

    Returns:
        A dict with exactly the keys in :data:`PROVENANCE_KEYS`.

    Example:
        >>> sorted(collect_provenance("cpu")) == sorted(PROVENANCE_KEYS)
        True
    """
    return {
        "package_version": gradretention.__version__,
        "git_commit": git_commit(),
        "torch_version": _distribution_version("torch"),
        "device": str(device),
        "platform": platform.platform(),
        "python_version": platform.python_version(),
        "optimizer_package": optimizer_package(optimizer) if optimizer else UNKNOWN,
        "optimizer_settings": optimizer_settings(optimizer, lr) if optimizer else UNKNOWN,
    }


@functools.lru_cache(maxsize=64)
def optimizer_package(spec: str) -> str:
    """``"<distribution> <version>"`` of the code behind an optimizer spec; ``"unknown"`` if it cannot be told."""
    try:
        info = optimizer_info(spec)
    except ValueError:
        return UNKNOWN
    if info.get("package"):  # an external optimizer: its own distribution
        return f"{info['package']} {info.get('version') or UNKNOWN}"
    if info["class"].startswith("torch."):
        return f"torch {_distribution_version('torch')}"
    return f"gradretention {gradretention.__version__}"


@functools.lru_cache(maxsize=1024)
def optimizer_settings(spec: str, lr: float | None = None) -> str:
    """Every hyperparameter a run of ``spec`` at ``lr`` uses, resolved today, as canonical JSON; ``"unknown"`` if it cannot be.

    ``lr=None`` stands for the spec's own lr (or the row's default). A stored run whose settings
    differ from today's resolution of its config was trained under other defaults: a resumed
    sweep trains it again instead of reusing it (:mod:`gradretention.bench.sweep`).
    """
    try:
        settings = resolved_hyperparameters(spec)
    except ValueError:
        return UNKNOWN
    if lr is not None:
        settings["lr"] = lr
    return json.dumps(settings, sort_keys=True, default=repr)


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The HEAD commit of the git checkout this package is imported from, else ``"unknown"``.

    The package file must be *tracked* by that checkout: an installed copy that merely
    sits inside some other repository (say, a virtualenv under a project folder) must
    not borrow that repository's commit. Cached, since it is asked once per run.
    """
    package_dir = Path(gradretention.__file__).resolve().parent
    tracked = _git(package_dir, "ls-files", "--error-unmatch", "__init__.py")
    if tracked is None:
        return UNKNOWN
    return _git(package_dir, "rev-parse", "HEAD") or UNKNOWN


def _git(cwd: Path, *args: str) -> str | None:
    """Run ``git -C cwd args``; the stripped stdout, or ``None`` on any failure."""
    try:
        done = subprocess.run(
            ["git", "-C", str(cwd), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    output = done.stdout.strip()
    return output if done.returncode == 0 and output else None


def _distribution_version(name: str) -> str:
    # Metadata instead of ``import torch``: provenance must stay cheap and must not fail.
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return UNKNOWN
