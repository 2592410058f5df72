"""No process outlives a sweep driver that is killed outright (SIGKILL: no cleanup code runs).

A real ``gradretention bench`` runs in a fresh interpreter with two pool workers (and so a
forkserver and multiprocessing's resource tracker), or with a private Ray instance; once its
processes are up and training, the driver is SIGKILLed and every process it had started must
be gone within a few seconds. Before issue 20 they all kept running (> 2 min each, holding a
torch import), Ray's node agents for a minute.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.reliability.sweeps import bench_args

GRACE_SECONDS = 15.0  # far above the ~1 s they take; well below the minutes they lived before
STARTUP_SECONDS = 240.0  # a loaded CI machine can take a while to import torch four times over


def _sweep_driver(out: Path, *extra: str) -> subprocess.Popen:
    """The tiny sweep with runs that never end, on two workers, in a fresh interpreter."""
    args = bench_args(out, epochs=100_000)
    args[args.index("--workers") + 1] = "2"
    return subprocess.Popen([sys.executable, "-m", "gradretention", *args, *extra], cwd=out.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not seen within {timeout} s")
        time.sleep(0.2)


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    living = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                living.append(process)
        except psutil.NoSuchProcess:
            continue
    return living


def _describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {process.name()}: {' '.join(process.cmdline())[:120]}"
    except psutil.Error:
        return f"{process.pid} (gone while being described)"


def _kill_and_watch(driver: subprocess.Popen, ready: Callable[[list[psutil.Process]], bool]) -> list[str]:
    """SIGKILL ``driver`` once ``ready(descendants)``; the descendants still alive after the grace period."""
    tree = psutil.Process(driver.pid)
    descendants: list[psutil.Process] = []

    def started() -> bool:
        nonlocal descendants
        assert driver.poll() is None, f"the sweep driver exited early with {driver.returncode}"
        descendants = tree.children(recursive=True)
        return ready(descendants)

    try:
        _wait_for(started, STARTUP_SECONDS, "the sweep's worker processes")
        time.sleep(1.0)  # let the runs get going
        descendants = tree.children(recursive=True)  # everything the driver started, now
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + GRACE_SECONDS
        while _alive(descendants) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = _alive(descendants)
        return [_describe(process) for process in survivors]
    finally:
        for process in _alive(descendants):  # never leave our own strays behind, whatever happened
            process.kill()
        if driver.poll() is None:
            driver.kill()
            driver.wait()


def _pool_started(processes: list[psutil.Process]) -> bool:
    # The workers are forks of the forkserver and share its command line: 1 server + 2 workers.
    return sum("forkserver" in _describe(process) for process in _alive(processes)) >= 3


@pytest.mark.slow
def test_no_process_outlives_a_sigkilled_local_sweep_driver(tmp_path):
    driver = _sweep_driver(tmp_path / "out")
    survivors = _kill_and_watch(driver, _pool_started)
    assert survivors == [], f"still running {GRACE_SECONDS} s after the driver was killed:\n" + "\n".join(survivors)


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason='ray is not installed: pip install "gradretention[ray]"')  # fmt: skip
def test_no_process_outlives_a_sigkilled_ray_sweep_driver(tmp_path):
    driver = _sweep_driver(tmp_path / "out", "--executor", "ray")

    def training(processes: list[psutil.Process]) -> bool:
        described = [_describe(process) for process in _alive(processes)]
        return any(" ray::_train" in line for line in described) and any(" raylet:" in line for line in described)

    survivors = _kill_and_watch(driver, training)
    assert survivors == [], f"still running {GRACE_SECONDS} s after the driver was killed:\n" + "\n".join(survivors)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_die_with_parent_has_linux_kill_the_child_when_its_parent_is_killed():
    # The second line of defence behind the lifeline: a pool worker whose forkserver dies dies too.
    code = (
        "import os, time\n"
        "from gradretention.bench.executors import die_with_parent\n"
        "if os.fork() == 0:\n"
        "    armed = die_with_parent()\n"
        "    os.write(1, f'{os.getpid()} {armed}\\n'.encode())\n"
        "    time.sleep(120)\n"
        "    os._exit(0)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    child = None
    try:
        pid, armed = parent.stdout.readline().split()
        child = psutil.Process(int(pid))
        assert armed == b"True"
        parent.kill()
        parent.wait()
        child.wait(timeout=GRACE_SECONDS)  # psutil.TimeoutExpired if it outlived its parent
    finally:
        if child is not None and _alive([child]):
            child.kill()
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()
