"""The presenter, driven by synthetic events: bands, routing, progress, results, JSON dump."""

from __future__ import annotations

import json
import math

import pytest

from gradretention.bench.events import EvalLogged, RunFinished, RunStarted, StepLogged
from gradretention.bench.results import RunConfig, RunResult
from gradretention.gui.messages import LayerSnapshot, Notice, SessionFinished, SessionStarted
from gradretention.gui.presenter import Band, Presenter, band_of, mean_std


def config(optimizer: str = "sgd", seed: int = 0) -> RunConfig:
    return RunConfig(task="spiral", optimizer=optimizer, seed=seed, epochs=2)


def session(optimizers: tuple[str, ...] = ("rescaled_sgd", "sgd"), seeds: int = 2, steps: int = 10) -> SessionStarted:
    return SessionStarted("spiral", optimizers, tuple(range(seeds)), steps * len(optimizers) * seeds,
                          ("layers.0.weight", "layers.0.bias"))


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
