"""TensorBoard logging: event files read back with TensorBoard's own reader."""

from __future__ import annotations

import re
import sys

import pytest

pytest.importorskip("tensorboard", reason='tensorboard is not installed: pip install "gradretention[tensorboard]"')

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2  # noqa: E402

from gradretention.bench.config import SweepConfig  # noqa: E402
from gradretention.bench.results import CurvePoint, RunConfig  # noqa: E402
from gradretention.bench.runner import train  # noqa: E402
from gradretention.bench.store import ResultsStore  # noqa: E402
from gradretention.bench.sweep import run_sweep  # noqa: E402
from gradretention.bench.tensorboard_logger import TensorBoardListener, run_name, scalars  # noqa: E402

EVALUATED = {f"{metric}/{split}" for metric in ("loss", "accuracy", "f1") for split in ("train", "val", "test")}


def read_run(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def hparams_of(events: EventAccumulator) -> tuple[dict, int]:
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"]).session_end_info
    values = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    return values, end.status


def test_every_run_of_a_sweep_has_its_curves_final_metrics_and_hparams(tmp_path):
    # Two workers: the runs train in other processes and the listener, in the driver, still sees them all.
    config = SweepConfig(tasks=("spiral",), optimizers=("sgd", "adam_hd[hypergrad_lr=1e-06]"), seeds=2, lrs=(0.05,),
                         max_steps=12, log_every=4, out=str(tmp_path), workers=2)  # fmt: skip
    run_sweep(config, listeners=[TensorBoardListener(tmp_path)])
    with ResultsStore(tmp_path) as store:
        runs, curves = store.runs(), store.curves()
        configs = {run_id: store.get(run_id).config for run_id in runs["run_id"]}

    folders = {p.parent for p in (tmp_path / "tensorboard").rglob("events.out.tfevents.*")}
    assert len(folders) == len(runs) == 4
    for run in runs.itertuples():
        events = read_run(tmp_path / "tensorboard" / run_name(configs[run.run_id]))
        tags = set(events.Tags()["scalars"])
        assert EVALUATED | {"loss/minibatch", "lr/group_0", "grad/var", "grad/mean", "final/test_accuracy"} <= tags
        # The values are the stored curves' (as float32, TensorBoard's scalar type).
        val_loss = curves[(curves["run_id"] == run.run_id) & (curves["split"] == "val") & (curves["name"] == "loss")]
        logged = events.Scalars("loss/val")
        assert [e.step for e in logged] == list(val_loss["step"])
        assert [e.value for e in logged] == pytest.approx(list(val_loss["value"]), rel=1e-6)
        assert events.Scalars("final/test_accuracy")[0].value == pytest.approx(run.test_accuracy, rel=1e-6)
        assert events.Scalars("final/test_accuracy")[0].step == 12
        values, status = hparams_of(events)
        assert values["optimizer"] == run.optimizer and values["lr"] == 0.05 and values["seed"] == run.seed
        assert values["task"] == "spiral" and values["status"] == "done" and status == api_pb2.STATUS_SUCCESS
        if run.optimizer.startswith("adam_hd"):
            assert values["hypergrad_lr"] == 1e-06  # the spec's hyperparameters get their own columns
            assert "optimizer/hypergradient/g0" in tags  # the optimizer's telemetry


def test_minibatch_and_evaluated_train_losses_get_separate_tags():
    # A log step at 4 and 6; an epoch of 6 steps ends at 6 with an evaluation.
    points = [
        CurvePoint(4, 0.67, "train", "loss", 1.0),
        CurvePoint(4, 0.67, "opt", "lr", 0.1, group=0),
        CurvePoint(4, 0.67, "opt", "hypergradient/g0", 0.5),
        CurvePoint(4, 0.67, "grad", "var", 0.2),
        CurvePoint(6, 1.0, "train", "loss", 0.9),
        CurvePoint(6, 1.0, "train", "epoch_seconds", 0.01),
        CurvePoint(6, 1.0, "train", "loss", 0.8),
        CurvePoint(6, 1.0, "train", "accuracy", 0.5),
        CurvePoint(6, 1.0, "val", "loss", 0.85),
        CurvePoint(6, 1.0, "test", "accuracy", 0.4),
        CurvePoint(7, 1.2, "train", "loss", 0.7),  # a log step after the evaluation
    ]
    assert list(scalars(points)) == [
        ("loss/minibatch", 4, 1.0), ("lr/group_0", 4, 0.1), ("optimizer/hypergradient/g0", 4, 0.5),
        ("grad/var", 4, 0.2), ("loss/minibatch", 6, 0.9), ("time/epoch_seconds", 6, 0.01), ("loss/train", 6, 0.8),
        ("accuracy/train", 6, 0.5), ("loss/val", 6, 0.85), ("accuracy/test", 6, 0.4), ("loss/minibatch", 7, 0.7),
    ]  # fmt: skip


def test_a_diverged_run_is_marked_failed_and_has_no_test_metrics(tmp_path):
    result = train(RunConfig(task="spiral", optimizer="sgd[lr=1e6]", max_steps=8, epochs=None, log_every=2))
    events = read_run(TensorBoardListener(tmp_path).log_result(result))
    values, status = hparams_of(events)
    assert result.status == "diverged" and values["status"] == "diverged" and status == api_pb2.STATUS_FAILURE
    assert values["lr"] == 1e6  # from the spec, since the config sets none
    assert not any(tag.startswith("final/test_") for tag in events.Tags()["scalars"])


def test_a_rerun_replaces_the_runs_event_file(tmp_path):
    listener = TensorBoardListener(tmp_path)
    result = train(RunConfig(task="spiral", optimizer="sgd", max_steps=4, epochs=None, log_every=2))
    listener.log_result(result)
    folder = listener.log_result(result)
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    assert [e.step for e in read_run(folder).Scalars("loss/minibatch")] == [2, 4]


def test_run_names_are_readable_distinct_and_filesystem_safe():
    tune = RunConfig(task="spiral", optimizer="adam_hd[lr=0.001,mode='a/b c']", lr=0.01, seed=3, phase="tune")
    final = RunConfig(task="spiral", optimizer="adam_hd[lr=0.001,mode='a/b c']", lr=0.01, seed=3, phase="final")
    name = run_name(tune)
    assert name.startswith("spiral/adam_hd(lr=0.001,mode=_a_b_c_)/lr=0.01,seed=3,tune,")
    assert name.endswith(tune.run_id[:8]) and run_name(final) != name
    assert all(re.fullmatch(r"[A-Za-z0-9._=,+()-]+", part) for part in name.split("/"))


def test_missing_tensorboard_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r'pip install "gradretention\[tensorboard\]"'):
        TensorBoardListener(tmp_path)
