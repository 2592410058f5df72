"""The Ray executor: same numbers as the local executor, dead workers retried once, clear errors.

One local Ray instance (2 CPUs) serves the whole module; starting it takes ~10 s.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from gradretention.bench.config import SweepConfig
from gradretention.bench.executors import LocalExecutor
from gradretention.bench.ray_executor import RayExecutor, make_executor
from gradretention.bench.results import RunConfig
from gradretention.bench.runner import train
from gradretention.bench.store import ResultsStore
from gradretention.bench.sweep import run_configs, run_sweep
from gradretention.tasks.registry import TASKS, get_task, register_task

# With `pytest -n N --dist loadgroup` every test here runs in one worker: one Ray instance.
pytestmark = pytest.mark.xdist_group("ray")
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason='ray is not installed: pip install "gradretention[ray]"')  # fmt: skip
METRICS = ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "test_f1", "steps", "lr", "seed")
TIMINGS = ("epoch_seconds", "samples_per_second")  # wall-clock curves differ between any two runs


def crash_on_first_attempts(log: str, crashes: int, inputs: torch.Tensor, generator: torch.Generator
                            ) -> torch.Tensor:  # fmt: skip
    """A spiral augmentation that kills its worker process mid-run on the first ``crashes`` attempts.

    Each attempt runs in a new process (the last one died), so attempts are counted as
    the distinct process ids written to ``log``. The inputs pass through unchanged.
    """
    path = Path(log)
    pids = path.read_text().split() if path.exists() else []
    if str(os.getpid()) not in pids:
        pids.append(str(os.getpid()))
        path.write_text(" ".join(pids))
    if len(pids) <= crashes:
        os._exit(1)  # no cleanup, no exception: as if the process were killed
    return inputs


def crashing_spiral(name: str, log: Path, crashes: int) -> None:
    augment = functools.partial(crash_on_first_attempts, str(log), crashes)
    register_task(dataclasses.replace(get_task("spiral"), name=name, augment=augment))


@pytest.fixture(scope="module")
def ray_executor():
    from ray import cloudpickle

    # The crashing tasks' functions travel by value: the workers need not import this file.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with RayExecutor(address=None, workers=2) as executor:
        yield executor
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    if executor.temp_dir is not None:  # kept for the logs of the workers that died
        shutil.rmtree(executor.temp_dir)


def sweep_config(out: Path) -> SweepConfig:
    # No lr grid: 2 optimizers x 2 seeds = 4 final runs.
    return SweepConfig(tasks=("spiral",), optimizers=("sgd", "adam_hd[hypergrad_lr=1e-06]"), seeds=2, lrs=(0.05,),
                       max_steps=12, log_every=4, out=str(out), workers=1, threads=1)  # fmt: skip


def stored(out: Path):
    with ResultsStore(out) as store:
        runs = store.runs().sort_values("run_id").reset_index(drop=True)
        curves = store.curves().sort_values(["run_id", "step", "split", "name"]).reset_index(drop=True)
    return runs, curves[~curves["name"].isin(TIMINGS)]


@needs_ray
def test_a_ray_sweep_gives_the_local_executors_numbers_and_resumes(tmp_path, ray_executor):
    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    ray_outcome = run_sweep(sweep_config(ray_out), executor=ray_executor)
    run_sweep(sweep_config(local_out))
    ray_runs, ray_curves = stored(ray_out)
    local_runs, local_curves = stored(local_out)

    assert ray_outcome.trained == 4 and list(ray_runs["status"]) == ["done"] * 4
    assert list(ray_runs["run_id"]) == list(local_runs["run_id"])
    # Bitwise equal: same seeds, same thread count, same numbers.
    assert ray_runs[list(METRICS)].equals(local_runs[list(METRICS)])
    columns = ["run_id", "step", "split", "name", "value"]
    assert ray_curves[columns].equals(local_curves[columns])
    # The driver wrote the store, so a second sweep finds every run and trains none.
    assert run_sweep(sweep_config(ray_out), executor=ray_executor).trained == 0


@pytest.fixture(scope="module")
def crash_results(ray_executor, tmp_path_factory):
    """One submission: a run whose worker dies once, one whose worker always dies, a normal run."""
    folder = tmp_path_factory.mktemp("crashes")
    crashing_spiral("test-crash-once", folder / "once.pids", crashes=1)
    crashing_spiral("test-crash-always", folder / "always.pids", crashes=99)
    configs = [RunConfig(task=task, optimizer="sgd", lr=0.05, max_steps=12, epochs=None, log_every=4)
               for task in ("test-crash-once", "test-crash-always", "spiral")]  # fmt: skip
    trained = run_configs(configs, folder / "out", ray_executor)
    with ResultsStore(folder / "out") as store:
        runs = store.runs().set_index("task")
    yield runs, folder, trained, configs
    for name in ("test-crash-once", "test-crash-always"):
        TASKS.pop(name, None)


@needs_ray
def test_a_worker_killed_mid_run_is_retried_and_its_run_ends_done_with_undisturbed_numbers(crash_results):
    runs, folder, _, configs = crash_results
    assert len((folder / "once.pids").read_text().split()) == 2  # killed once, retried once
    assert runs.loc["test-crash-once", "status"] == "done"
    undisturbed = train(dataclasses.replace(configs[0], task="spiral"))  # the same run, never killed
    assert runs.loc["test-crash-once", "test_loss"] == undisturbed.final["test_loss"]
    assert runs.loc["test-crash-once", "steps"] == 12


@needs_ray
def test_a_worker_that_dies_twice_is_recorded_as_error_and_the_sweep_goes_on(crash_results, ray_executor):
    runs, folder, trained, _ = crash_results
    assert len((folder / "always.pids").read_text().split()) == 2  # one retry, not more
    assert trained == 3
    assert runs.loc["test-crash-always", "status"] == "error"
    reason = runs.loc["test-crash-always", "reason"]
    assert "'sgd' on task 'test-crash-always' (seed 0)" in reason and "no result after 2 attempts" in reason
    assert "WorkerCrashedError" in reason
    logs = ray_executor.temp_dir / "session_latest" / "logs"
    assert f"(worker logs: {logs})" in reason and logs.is_dir()
    assert runs.loc["spiral", "status"] == "done"


@needs_ray
def test_a_bad_hyperparameter_in_a_worker_raises_the_original_value_error(ray_executor):
    config = RunConfig(task="spiral", optimizer="sgd[momentum=-0.5]", max_steps=2, epochs=None)
    with pytest.raises(ValueError, match="momentum") as caught:
        list(ray_executor.submit_all([config], None))
    assert type(caught.value) is ValueError  # the run's own error, not Ray's wrapper


@needs_ray
def test_cuda_runs_without_reserved_gpus_are_refused_before_anything_starts():
    executor = RayExecutor(address=None, gpus_per_run=0)
    with pytest.raises(ValueError, match=r"'cuda' needs gpus_per_run > 0 \(--gpus-per-run\)"):
        next(executor.submit_all([RunConfig(task="spiral", optimizer="sgd", device="cuda")], None))


def test_asking_for_ray_without_it_installed_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when it is missing
    install = r'pip install "gradretention\[ray\]"'
    with pytest.raises(ImportError, match=install):
        RayExecutor(address=None)
    with pytest.raises(ImportError, match=install):
        make_executor("ray")


def test_make_executor_builds_the_local_executor_without_importing_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    executor = make_executor("local", workers=2, threads=1)
    assert isinstance(executor, LocalExecutor) and executor.workers == 2 and executor.threads == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "dask"}, r"unknown executor 'dask'; valid executors: local, ray"),
        ({"kind": "local", "ray_address": "auto"}, r"ray_address='auto' only apply to the ray executor"),
        ({"kind": "local", "gpus_per_run": 1}, r"gpus_per_run=1 only apply to the ray executor"),
    ],
)
def test_make_executor_refuses_unknown_kinds_and_ray_options_for_local(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_executor(**kwargs)


@needs_ray
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpus_per_run": 0}, "cpus_per_run must be > 0, got 0"),
        ({"gpus_per_run": -1}, "gpus_per_run must be >= 0, got -1"),
        ({"workers": 0}, "workers must be >= 1, got 0"),
        ({"threads": -2}, r"threads must be >= 0 \(0: int\(cpus_per_run\)\), got -2"),
    ],
)
def test_ray_executor_refuses_bad_resource_counts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RayExecutor(address=None, **kwargs)
