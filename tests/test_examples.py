"""The examples run as a user runs them: as scripts, in a fresh interpreter, for a few steps."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LR_ROW = re.compile(r"^\s*(\d+)\s+(?:[\d.]+\s+)?([\d.]+)\s*$", re.MULTILINE)  # "step [loss] lr"
FINAL = re.compile(r"validation accuracy ([\d.]+).*final lr ([\d.]+) \(started at 0\.001\)")


def run_example(name: str, *args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """``python examples/<name> args`` (``prelude`` runs first, e.g. to hide a package)."""
    script = EXAMPLES / name
    # One thread, offline: the machine is shared and nothing may be downloaded.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, str(script), *args]
    if prelude:  # the script still runs as __main__ with its own argv, after the prelude
        run = "import runpy, sys; sys.argv = {!r}; runpy.run_path(sys.argv[0], run_name='__main__')"
        command = [sys.executable, "-c", prelude + run.format([str(script), *args])]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=EXAMPLES.parent)


def lr_trajectory(stdout: str) -> list[tuple[int, float]]:
    return [(int(step), float(lr)) for step, lr in LR_ROW.findall(stdout)]


def check_adapting_run(result: subprocess.CompletedProcess[str], steps: int) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    trajectory = lr_trajectory(result.stdout)
    assert trajectory[-1][0] == steps
    lrs = [lr for _, lr in trajectory]
    # Hypergradient descent moves the lr away from α0 = 0.001 (here: up, the loss falls steadily).
    assert lrs == sorted(lrs) and lrs[-1] > 0.001 * 1.1
    accuracy, final_lr = map(float, FINAL.search(result.stdout).groups())
    assert final_lr == pytest.approx(lrs[-1], abs=1e-6) and accuracy > 0.3  # 10 classes: chance is 0.1


def test_the_plain_pytorch_example_trains_and_prints_a_moving_lr():
    check_adapting_run(run_example("plain_pytorch.py", "--steps", "20"), steps=20)


def test_the_plain_pytorch_example_with_hypergrad_lr_zero_keeps_the_lr():
    result = run_example("plain_pytorch.py", "--steps", "10", "--hypergrad-lr", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert {lr for _, lr in lr_trajectory(result.stdout)} == {0.001}


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="transformers' Trainer needs accelerate")
def test_the_hf_trainer_example_keeps_the_optimizers_adapted_lr():
    check_adapting_run(run_example("hf_trainer.py", "--steps", "20"), steps=20)


HAS_LIGHTNING = any(importlib.util.find_spec(name) is not None for name in ("lightning", "pytorch_lightning"))


@pytest.mark.skipif(not HAS_LIGHTNING, reason="lightning is not installed")
def test_the_lightning_example_trains_with_our_optimizer():
    check_adapting_run(run_example("lightning_module.py", "--steps", "20"), steps=20)


def test_the_lightning_example_without_lightning_says_how_to_install_it():
    hide = "import sys; sys.modules['lightning'] = None; sys.modules['pytorch_lightning'] = None; "
    result = run_example("lightning_module.py", "--steps", "2", prelude=hide)
    assert result.returncode == 1
    assert "pip install lightning" in result.stderr
