"""The presenter, driven by synthetic events: bands, routing, progress, results, JSON dump."""

from __future__ import annotations

import json
import math

import pytest

from gradretention.bench.events import EvalLogged, RunFinished, RunStarted, StepLogged
from gradretention.bench.results import RunConfig, RunResult
from gradretention.gui.messages import LayerSnapshot, Notice, OptimizerTraits, SessionFinished, SessionStarted
from gradretention.gui.presenter import Band, Presenter, band_of, mean_std


def config(optimizer: str = "sgd", seed: int = 0) -> RunConfig:
    return RunConfig(task="spiral", optimizer=optimizer, seed=seed, epochs=2)


def traits_of(spec: str) -> OptimizerTraits:
    """RescaledSGD's capabilities for ``rescaled_sgd[...]``, one scalar lr otherwise (as the worker probes them)."""
    retention = spec.startswith("rescaled_sgd")
    return OptimizerTraits(spec, 0.01, per_element_lr=retention, retention=retention)


def session(optimizers: tuple[str, ...] = ("rescaled_sgd", "sgd"), seeds: int = 2, steps: int = 10) -> SessionStarted:
    return SessionStarted("spiral", optimizers, tuple(range(seeds)), steps * len(optimizers) * seeds,
                          ("layers.0.weight", "layers.0.bias"), tuple(traits_of(spec) for spec in optimizers))


def step(optimizer: str = "sgd", seed: int = 0, at: int = 1, loss: float = 1.0, lrs: tuple[float, ...] = (0.01,),
         telemetry: dict[str, float] | None = None) -> StepLogged:
    return StepLogged(config(optimizer, seed), at, at / 5, loss, lrs, telemetry or {})


def finished(optimizer: str, seed: int, status: str = "done", **final: float) -> RunFinished:
    return RunFinished(RunResult(config(optimizer, seed), status, final=final))


def test_band_aligns_seeds_by_index_and_uses_sample_std() -> None:
    band = band_of([[(1.0, 1.0), (2.0, 3.0)], [(1.0, 3.0)]])
    assert band.x == (1.0, 2.0)
    assert band.mean == (2.0, 3.0)
    assert band.std == pytest.approx((math.sqrt(2.0), 0.0))  # sample std of {1, 3}; one seed: 0
    assert band.count == (2, 1)


def test_band_of_nothing_is_empty() -> None:
    assert band_of([]) == Band()


def test_mean_std_ignores_non_finite_and_reports_n() -> None:
    assert mean_std([0.5, 0.7, math.nan]) == pytest.approx((0.6, math.sqrt(0.02), 2))
    mean, std, n = mean_std([])
    assert math.isnan(mean) and math.isnan(std) and n == 0


def test_validation_accuracy_band_is_mean_and_std_over_seeds() -> None:
    presenter = Presenter()
    presenter.handle(session())
    for seed, accuracies in ((0, (0.5, 0.8)), (1, (0.7, 0.9))):
        for epoch, accuracy in enumerate(accuracies, start=1):
            presenter.handle(EvalLogged(config("sgd", seed), 5 * epoch, float(epoch), "val",
                                        {"loss": 1.0 / epoch, "accuracy": accuracy}))
    band = presenter.band("sgd", "val_accuracy")
    assert band.x == (1.0, 2.0)
    assert band.mean == pytest.approx((0.6, 0.85))
    assert band.std == pytest.approx((math.sqrt(0.02), math.sqrt(0.005)))
    assert presenter.band("sgd", "val_loss").mean == pytest.approx((1.0, 0.5))
    assert presenter.band("sgd", "train_accuracy") == Band()


def test_progress_counts_finished_runs_whole_and_the_current_run_by_step() -> None:
    presenter = Presenter()
    presenter.handle(session(("sgd",), seeds=2, steps=10))  # 20 steps in all
    presenter.handle(RunStarted(config("sgd", 0), 10))
    presenter.handle(step("sgd", 0, at=5))
    assert presenter.progress() == pytest.approx(0.25)
    presenter.handle(finished("sgd", 0, "interrupted"))  # a skipped run counts as its planned steps
    assert presenter.progress() == pytest.approx(0.5)
    presenter.handle(RunStarted(config("sgd", 1), 10))
    presenter.handle(step("sgd", 1, at=2))
    assert presenter.progress() == pytest.approx(0.6)
    presenter.handle(SessionFinished("done"))
    assert presenter.progress() == 1.0


def test_telemetry_of_group_zero_is_routed_to_lr_and_controller_series() -> None:
    presenter = Presenter()
    presenter.handle(session(("adam_hd",), seeds=1))
    presenter.handle(step("adam_hd", lrs=(0.5,), telemetry={
        "lr/g0": 0.02, "lr_mean/g0": 0.004, "hypergradient/g0": -0.3, "epsilon/g0": 0.4,
        "action_lr_scale/g0": 2.0, "reward/g0": 0.1, "hypergradient/g1": 9.0}))
    assert presenter.band("adam_hd", "lr").mean == (0.02,)  # the telemetry α wins over group lr
    assert presenter.band("adam_hd", "lr_mean").mean == (0.004,)
    assert presenter.series_names("adam_hd", "telemetry/") == ["telemetry/epsilon", "telemetry/hypergradient"]
    assert presenter.band("adam_hd", "telemetry/hypergradient").mean == (-0.3,)


def test_lr_falls_back_to_the_group_lr_without_telemetry() -> None:
    presenter = Presenter()
    presenter.handle(step("sgd", lrs=(0.05, 0.1)))
    assert presenter.band("sgd", "lr").mean == (0.05,)
    assert presenter.current_lr == 0.05  # the base-lr entry is checked against this peak


def test_bars_keep_the_latest_snapshot_per_optimizer_and_skip_missing_lrs() -> None:
    presenter = Presenter()
    presenter.handle(session())
    presenter.handle(LayerSnapshot(config("rescaled_sgd"), 1, "layers.0.weight", (1.0, -1.0), (0.1, 0.2), (0.3, 0.4)))
    presenter.handle(LayerSnapshot(config("rescaled_sgd"), 2, "layers.0.weight", (2.0, -2.0), (0.5, 0.6), (0.7, 0.8)))
    presenter.handle(LayerSnapshot(config("sgd"), 1, "layers.0.bias", (3.0,), (4.0,), None))
    assert presenter.bars("update") == {"rescaled_sgd": (2.0, -2.0), "sgd": (3.0,)}
    assert presenter.bars("effective_lr") == {"rescaled_sgd": (0.7, 0.8)}
    assert presenter.watched_layer() == "layers.0.bias"
    with pytest.raises(ValueError, match=r"unknown bar kind 'weights'; valid: update, grad, effective_lr"):
        presenter.bars("weights")


def test_result_rows_summarise_done_runs_and_count_every_status() -> None:
    presenter = Presenter()
    presenter.handle(session())
    presenter.handle(finished("rescaled_sgd", 0, test_loss=0.4, test_accuracy=0.8))
    presenter.handle(finished("rescaled_sgd", 1, test_loss=0.6, test_accuracy=0.9))
    presenter.handle(finished("sgd", 0, "diverged"))
    rescaled, sgd = presenter.result_rows()
    assert rescaled.optimizer == "rescaled_sgd" and rescaled.runs == 2 and rescaled.statuses == {"done": 2}
    assert rescaled.test_loss == pytest.approx((0.5, math.sqrt(0.02), 2))
    assert rescaled.test_accuracy == pytest.approx((0.85, math.sqrt(0.005), 2))
    assert sgd.statuses == {"diverged": 1} and sgd.test_accuracy[2] == 0


def test_refused_notice_stays_up_while_steps_update_the_status() -> None:
    presenter = Presenter()
    presenter.handle(session(("sgd",), seeds=1, steps=10))
    presenter.handle(RunStarted(config("sgd"), 10))
    presenter.handle(Notice("base lr 1 is above the peak lr 0.01", refused=True))
    presenter.handle(step("sgd", at=3, loss=0.5))
    assert presenter.notice == "refused: base lr 1 is above the peak lr 0.01"
    assert presenter.status.startswith("sgd · seed 1/1 · epoch 0.6 · step 3/10 · loss 0.5000")
    presenter.handle(Notice("lr set to 0.05"))
    assert presenter.notice == "lr set to 0.05"


def test_failed_session_shows_why_in_the_status_line() -> None:
    presenter = Presenter()
    presenter.handle(SessionFinished("error", "Unknown task 'x'"))
    assert presenter.status == "session error: Unknown task 'x'"
    assert presenter.session_status == "error"


def test_a_new_session_clears_the_previous_one() -> None:
    presenter = Presenter()
    presenter.handle(session(("sgd",)))
    presenter.handle(step("sgd"))
    presenter.handle(finished("sgd", 0, test_accuracy=0.5, test_loss=1.0))
    presenter.handle(session(("adam",)))
    assert presenter.optimizers == ["adam"]
    assert presenter.band("sgd", "lr") == Band() and not presenter.results


def test_dump_is_strict_json_with_nan_as_null() -> None:
    presenter = Presenter()
    presenter.handle(session(("sgd",), seeds=1))
    presenter.handle(step("sgd", loss=math.nan))
    presenter.handle(finished("sgd", 0, "diverged"))
    state = json.loads(json.dumps(presenter.to_dict(), allow_nan=False))
    assert state["series"]["sgd:loss"]["mean"] == [None]
    assert state["results"][0]["test_loss"] == [None, None, 0]


def test_unknown_events_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"cannot handle str; known events: SessionStarted, RunStarted"):
        Presenter().handle("step")  # type: ignore[arg-type]


def run_whole_session(presenter: Presenter, optimizers: tuple[str, ...] = ("sgd",)) -> None:
    presenter.starting(f"{', '.join(optimizers)} on spiral")
    presenter.handle(session(optimizers, seeds=1, steps=2))
    for spec in optimizers:
        presenter.handle(RunStarted(config(spec), 2))
        presenter.handle(step(spec, at=1))
        presenter.handle(finished(spec, 0, test_accuracy=0.5))
    presenter.handle(SessionFinished("done"))


def test_nothing_says_starting_once_the_session_is_done() -> None:
    presenter = Presenter()
    presenter.starting("sgd on spiral")
    assert presenter.phase == "starting" and presenter.status == "starting sgd on spiral…"
    presenter.notice = "paused"  # a control message from the running session
    run_whole_session(presenter)
    assert presenter.phase == "done" and presenter.status == "session done"
    assert presenter.notice == ""
    run_whole_session(presenter, ("adam",))  # a second session goes through the same states
    assert (presenter.phase, presenter.status, presenter.notice) == ("done", "session done", "")


def test_buttons_follow_the_session_phase() -> None:
    presenter = Presenter()
    idle = presenter.control_state()
    assert idle.start_enabled and not idle.session_buttons and not idle.lr_enabled and idle.lr_label == "lr (no run)"
    presenter.starting("sgd on spiral")
    starting = presenter.control_state()
    assert not starting.start_enabled and starting.session_buttons  # a slow start can be paused or stopped
    presenter.set_paused(True)  # before the session's first event
    presenter.handle(session(("sgd",), seeds=1))
    presenter.handle(RunStarted(config("sgd"), 10))
    paused = presenter.control_state()
    assert paused.session_buttons and paused.paused and not paused.start_enabled and presenter.notice == "paused"
    presenter.set_paused(False)
    assert not presenter.control_state().paused and presenter.notice == "resumed"
    presenter.handle(SessionFinished("stopped"))
    done = presenter.control_state()
    assert done.start_enabled and not done.session_buttons and not done.paused and done.target is None


def test_lr_slider_names_the_running_optimizer_and_retention_controls_need_rescaled_sgd() -> None:
    presenter = Presenter()
    presenter.handle(session(("rescaled_sgd[lr=0.0316]", "sgd[lr=1]", "adam_hd_adam[hypergrad_lr=1e-08,lr=0.001]")))
    presenter.handle(RunStarted(config("rescaled_sgd[lr=0.0316]"), 10))
    state = presenter.control_state()
    assert (state.target, state.lr_label, state.retention) == (
        "rescaled_sgd[lr=0.0316]", "peak lr of rescaled_sgd[lr=0.0316]", True)
    presenter.handle(finished("rescaled_sgd[lr=0.0316]", 0))
    assert presenter.control_state().lr_label == "peak lr of rescaled_sgd[lr=0.0316]"  # between seeds: the same
    presenter.handle(RunStarted(config("sgd[lr=1]"), 10))
    state = presenter.control_state()
    assert (state.lr_label, state.lr_enabled, state.retention) == ("lr of sgd[lr=1]", True, False)
    presenter.handle(RunStarted(config("adam_hd_adam[hypergrad_lr=1e-08,lr=0.001]"), 10))
    assert presenter.control_state().lr_label == "lr of adam_hd_adam[hypergrad_lr=1…"  # cut to 28 characters


def test_per_element_note_tells_waiting_from_absent() -> None:
    presenter = Presenter()
    assert "RescaledSGD" in presenter.per_element_note()
    presenter.handle(session(("sgd", "rescaled_sgd[lr=0.0316]")))
    assert presenter.per_element_note() == "waiting for the first step of rescaled_sgd[lr=0.0316]"
    presenter.handle(LayerSnapshot(config("rescaled_sgd[lr=0.0316]"), 1, "layers.0.weight", (1.0,), (0.1,), (0.3,)))
    assert presenter.per_element_note() is None
    presenter.handle(session(("sgd", "adam")))
    assert presenter.per_element_note().startswith("no per-element lr: sgd, adam keep one lr per group")
