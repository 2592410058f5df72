"""The GUI's training thread on the real spiral task, one epoch per run (6 steps of 32)."""

from __future__ import annotations

import queue

import pytest
import torch

from gradretention.bench.events import RunFinished, RunStarted, StepLogged
from gradretention.gui.messages import (
    LayerSnapshot, Notice, OptimizerTraits, SelectLayer, SessionFinished, SessionStarted, SetBaseLr, SetLr,
    SetRetainMin,
)
from gradretention.gui.worker import GuiSession, TrainingWorker, check_optimizer_specs, optimizer_traits

TIMEOUT = 120.0  # seconds; generous because the test machine may be shared
# θ_after − θ_before in float32: with |θ| < 1 the difference is exact to half a float32 ulp of 1.
ATOL = 2 ** -24


def run_session(session: GuiSession, *commands: object) -> list[object]:
    events: queue.Queue = queue.Queue()
    worker = TrainingWorker(session, events)
    for command in commands:
        worker.send(command)  # queued before the first step: applied to the first run
    worker.start()
    worker.join(TIMEOUT)
    assert not worker.is_alive()
    return list(events.queue)


def of_type(events: list[object], kind: type) -> list:
    return [event for event in events if isinstance(event, kind)]


def test_traits_come_from_the_optimizer_not_its_name() -> None:
    assert optimizer_traits("rescaled_sgd[lr=0.0316]") == OptimizerTraits("rescaled_sgd[lr=0.0316]", 0.0316, True, True)
    assert optimizer_traits("sgd[lr=1]") == OptimizerTraits("sgd[lr=1]", 1.0, False, False)
    assert optimizer_traits("adam_hd") == OptimizerTraits("adam_hd", 0.001, False, False)
    with pytest.raises(ValueError, match="Unknown optimizer 'rescaled'"):
        optimizer_traits("rescaled")


def test_a_session_emits_every_run_and_plans_its_steps() -> None:
    events = run_session(GuiSession(optimizers=("rescaled_sgd", "sgd"), seeds=2, epochs=1))
    started = events[0]
    assert isinstance(started, SessionStarted)
    assert started.total_steps == 2 * 2 * 6  # 180 train points in batches of 32: 6 steps per epoch
    assert started.layers[0] == "layers.0.weight"
    assert started.traits == (OptimizerTraits("rescaled_sgd", 0.01, True, True), OptimizerTraits("sgd", 0.01))
    runs = of_type(events, RunFinished)
    assert [(r.result.config.optimizer, r.result.config.seed, r.result.status) for r in runs] == [
        ("rescaled_sgd", 0, "done"), ("rescaled_sgd", 1, "done"), ("sgd", 0, "done"), ("sgd", 1, "done")]
    assert all(0.0 <= r.result.final["test_accuracy"] <= 1.0 for r in runs)
    assert events[-1] == SessionFinished("done")
    assert len(of_type(events, StepLogged)) == 24


def test_sgd_snapshot_update_is_minus_lr_times_gradient() -> None:
    events = run_session(GuiSession(optimizers=("sgd",), seeds=1, epochs=1))
    snapshots = of_type(events, LayerSnapshot)
    assert len(snapshots) == 6 and all(s.effective_lr is None for s in snapshots)
    for snap in snapshots:
        assert len(snap.update) == 64  # the first 64 of the 128 weights of layer 0
        assert torch.tensor(snap.update) == pytest.approx(-0.01 * torch.tensor(snap.grad), abs=ATOL)


def test_rescaled_sgd_first_update_is_minus_eta_times_sign_of_gradient() -> None:
    events = run_session(GuiSession(optimizers=("rescaled_sgd",), seeds=1, epochs=1))
    first = of_type(events, LayerSnapshot)[0]  # after one step the retained gradient m is g itself
    eta, grad = torch.tensor(first.effective_lr), torch.tensor(first.grad)
    assert torch.tensor(first.update) == pytest.approx(-eta * torch.sign(grad), abs=ATOL)
    assert eta.min() >= 1e-5 - 1e-12 and eta.max() <= 0.01 + 1e-9


def test_lr_command_changes_the_running_optimizer_and_later_seeds() -> None:
    events = run_session(GuiSession(optimizers=("sgd",), seeds=2, epochs=1), SetLr(0.05))
    assert Notice("lr set to 0.05") in events
    assert {step.lrs for step in of_type(events, StepLogged)} == {(0.05,)}  # seed 1 gets it replayed
    snap = of_type(events, LayerSnapshot)[-1]
    assert torch.tensor(snap.update) == pytest.approx(-0.05 * torch.tensor(snap.grad), abs=ATOL)


def test_retain_min_off_gives_every_element_the_peak_lr() -> None:
    events = run_session(GuiSession(optimizers=("rescaled_sgd",), seeds=1, epochs=1), SetRetainMin(False))
    snapshots = of_type(events, LayerSnapshot)
    assert all(snap.effective_lr == pytest.approx([0.01] * 64) for snap in snapshots)
    first = snapshots[0]  # m = g after one step; dead units (g = 0) do not move
    assert torch.tensor(first.update) == pytest.approx(-0.01 * torch.sign(torch.tensor(first.grad)), abs=ATOL)


def test_base_lr_above_the_peak_is_refused_and_the_run_goes_on() -> None:
    events = run_session(GuiSession(optimizers=("rescaled_sgd",), seeds=1, epochs=1), SetBaseLr(0.5), SetBaseLr(0.002))
    notices = of_type(events, Notice)
    assert notices[0].refused and "base lr 0.5 is above the peak lr 0.01" in notices[0].message
    assert notices[1] == Notice("base_lr set to 0.002")
    assert min(min(s.effective_lr) for s in of_type(events, LayerSnapshot)) == pytest.approx(0.002)
    assert of_type(events, RunFinished)[0].result.status == "done"


def test_controls_an_optimizer_lacks_are_refused() -> None:
    events = run_session(GuiSession(optimizers=("sgd",), seeds=1, epochs=1),
                         SetRetainMin(False), SelectLayer("nope"), SelectLayer("layers.2.weight"))
    refused = [n.message for n in of_type(events, Notice) if n.refused]
    assert refused[0].startswith("the running optimizer has no retain_min")
    assert refused[1].startswith("no layer 'nope'; layers: layers.0.weight, layers.0.bias")
    assert {s.layer for s in of_type(events, LayerSnapshot)} == {"layers.2.weight"}


def wait_for(events: queue.Queue, kind: type) -> object:
    while True:
        event = events.get(timeout=TIMEOUT)
        if isinstance(event, kind):
            return event


def test_skip_ends_the_current_optimizer_and_the_next_one_runs() -> None:
    events: queue.Queue = queue.Queue()
    worker = TrainingWorker(GuiSession(optimizers=("sgd", "adam"), seeds=2, epochs=1), events)
    worker.pause()  # held before its first step until we skip
    worker.start()
    wait_for(events, RunStarted)
    worker.skip()
    worker.join(TIMEOUT)
    runs = [event.result for event in [wait_for(events, RunFinished) for _ in range(3)]]
    assert (runs[0].config.optimizer, runs[0].status, runs[0].steps) == ("sgd", "interrupted", 0)
    assert runs[0].reason == "skipped by the user at step 0"
    later = [(r.config.optimizer, r.config.seed, r.status) for r in runs[1:]]
    assert later == [("adam", 0, "done"), ("adam", 1, "done")]
    assert wait_for(events, SessionFinished) == SessionFinished("done")


def test_stop_ends_the_session() -> None:
    events: queue.Queue = queue.Queue()
    worker = TrainingWorker(GuiSession(optimizers=("sgd",), seeds=3, epochs=1), events)
    worker.pause()
    worker.start()
    wait_for(events, RunStarted)
    worker.stop()
    worker.join(TIMEOUT)
    assert wait_for(events, RunFinished).result.status == "interrupted"
    assert wait_for(events, SessionFinished) == SessionFinished("stopped")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "spirals"}, r"Unknown task 'spirals'\. Did you mean 'spiral'"),
        ({"optimizers": ("sgd", "adam", "adagrad", "momentum", "rmsprop")}, r"choose 1 to 4 optimizers, got 5"),
        ({"optimizers": ("sgd", "sgd")}, r"each optimizer may appear once"),
        ({"optimizers": ("sgdd",)}, r"Unknown optimizer 'sgdd'\. Did you mean 'sgd'"),
        ({"seeds": 0}, r"seeds must be >= 1, got 0"),
        ({"epochs": 0}, r"epochs must be >= 1, got 0"),
    ],
)
def test_bad_sessions_are_refused_before_training(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GuiSession(**kwargs)


def test_spec_check_names_the_bad_hyperparameter() -> None:
    with pytest.raises(ValueError, match=r"Unknown hyperparameter\(s\) momentun for optimizer 'sgd'"):
        check_optimizer_specs(("sgd[momentun=0.9]",))


def test_the_live_view_gets_a_validation_point_every_epoch() -> None:
    from gradretention.bench.events import EvalLogged  # noqa: PLC0415

    events = run_session(GuiSession(optimizers=("sgd",), seeds=1, epochs=3))
    validation = [event.epoch for event in of_type(events, EvalLogged) if event.split == "val"]
    assert validation == [1.0, 2.0, 3.0]  # the benchmark's "auto" schedule would give only the last
