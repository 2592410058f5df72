"""The evaluation schedule: "auto" (k epochs from the split sizes) by default, or every N epochs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradretention.bench.checkpoint import read_checkpoint_extra
from gradretention.bench.events import StepLogged
from gradretention.bench.config import SweepConfig, eval_every_value, sweep_config_from_mapping
from gradretention.bench.metering import evaluation_interval
from gradretention.bench.metering import MEASURED_FINALS
from gradretention.bench.results import RunConfig
from gradretention.bench.runner import Checkpointing, run_options, train
from gradretention.cli import build_parser
from gradretention.tasks import registry
from gradretention.tasks.base import Split, Task, TaskData
from gradretention.tasks.registry import get_task

TIMING_NAMES = MEASURED_FINALS  # the finals read off clocks and memory


def evaluated_epochs(result, split: str = "test") -> list[float]:
    """Epochs at which ``split`` was evaluated (test and train follow the schedule; val is every epoch)."""
    return sorted({p.epoch for p in result.curves if p.split == split and p.name == "loss"})


def numbers(result):
    """What a run reports, without wall-clock timings and memory peaks."""
    final = {k: v for k, v in result.final.items() if k not in TIMING_NAMES}
    curves = [(c.step, c.epoch, c.split, c.name, c.group, c.value) for c in result.curves if c.name not in TIMING_NAMES]
    return final, curves, result.steps_to_target, result.status, result.steps


def sized_data(train: int, val: int, test: int) -> TaskData:
    def split(n: int) -> Split:
        return Split(torch.zeros(n, 2), torch.zeros(n, dtype=torch.long))

    return TaskData(split(train), split(val), split(test), num_classes=2)


def sized_task(evaluate_train: bool = True) -> Task:
    return Task(name="sized", description="", load=lambda seed, data_dir: sized_data(1, 1, 1),
                build_model=lambda k: nn.Linear(2, k), evaluate_train=evaluate_train)  # fmt: skip


@pytest.mark.parametrize(
    ("sizes", "evaluate_train", "interval"),
    [
        # ceil(10 * evaluated / (3 * train)), by hand:
        ((180, 60, 60), True, 6),  # 3000 / 540 = 5.56
        ((3500, 500, 1000), True, 5),  # 50000 / 10500 = 4.76
        ((300, 0, 0), True, 4),  # the train split alone: 10 / 3 = 3.33
        ((300, 45, 45), False, 1),  # 900 / 900 = 1 exactly: no rounding pushes it to 2
        ((300, 46, 45), False, 2),  # 910 / 900
        ((100_000, 10, 10), True, 4),  # never below the train split's own share
        ((10, 0, 0), False, 1),  # nothing evaluated: k >= 1
    ],
)
def test_auto_interval_keeps_the_estimated_evaluation_share_within_ten_percent(sizes, evaluate_train, interval):
    data = sized_data(*sizes)
    assert evaluation_interval("auto", sized_task(evaluate_train), data) == interval


def test_auto_interval_of_the_embedded_tasks():
    expected = {"spiral": 6, "digits-logreg": 6, "digits-mlp": 6, "digits-cnn": 6, "mnist1d-mlp": 5, "mnist1d-cnn": 5}
    for name, interval in expected.items():
        task = get_task(name)
        assert evaluation_interval("auto", task, task.load(0, None)) == interval, name


def test_a_forced_interval_is_used_as_given():
    task = get_task("spiral")
    assert evaluation_interval(1, task, task.load(0, None)) == 1
    assert evaluation_interval(50, task, task.load(0, None)) == 50


def test_default_run_evaluates_every_k_epochs_and_at_the_last():
    # spiral: k = 6; 13 epochs of 6 steps (180 points, batches of 32).
    result = train(RunConfig(task="spiral", optimizer="adam", epochs=13))
    assert evaluated_epochs(result) == [6.0, 12.0, 13.0]
    steps = sorted({p.step for p in result.curves if p.split == "test"})
    assert steps == [36, 72, 78]
    # Validation alone runs after every epoch: steps to target at a resolution of one epoch.
    assert evaluated_epochs(result, "val") == [float(e) for e in range(1, 14)]


def test_eval_every_forces_the_interval_and_one_gives_every_epoch():
    every_4 = train(RunConfig(task="spiral", optimizer="adam", epochs=10, extra=(("eval_every", 4),)))
    assert evaluated_epochs(every_4) == [4.0, 8.0, 10.0]
    every_1 = train(RunConfig(task="spiral", optimizer="adam", epochs=3, extra=(("eval_every", 1),)))
    assert evaluated_epochs(every_1) == [1.0, 2.0, 3.0]


def test_a_step_budget_is_evaluated_at_epoch_multiples_of_k_and_at_its_last_step():
    result = train(RunConfig(task="spiral", optimizer="adam", epochs=None, max_steps=40))  # 6.67 epochs
    assert sorted({p.step for p in result.curves if p.split == "test"}) == [36, 40]
    assert sorted({p.step for p in result.curves if p.split == "val"}) == [6, 12, 18, 24, 30, 36, 40]


def test_the_schedule_changes_evaluations_only_never_training():
    def run(extra):
        logged = []

        def listener(event):
            if isinstance(event, StepLogged):
                logged.append((event.step, event.loss, event.lrs, event.grad_mean, event.grad_var))

        return train(RunConfig(task="spiral", optimizer="adam", epochs=7, log_every=1, extra=extra), [listener]), logged

    (sparse, sparse_steps), (dense, dense_steps) = run(()), run((("eval_every", 1),))
    assert len(sparse_steps) == 42 and sparse_steps == dense_steps
    for key in ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_f1"):
        assert sparse.final[key] == dense.final[key], key
    # best_val_* are taken at evaluations: seven of them find at least as good a value as two.
    assert dense.final["best_val_loss"] <= sparse.final["best_val_loss"]
    assert dense.final["best_val_accuracy"] >= sparse.final["best_val_accuracy"]


def test_two_runs_of_one_config_evaluate_at_the_same_steps_with_the_same_numbers():
    config = RunConfig(task="digits-logreg", optimizer="adam", epochs=7)
    first, second = train(config), train(config)
    assert evaluated_epochs(first) == [6.0, 7.0]
    assert numbers(first) == numbers(second)


def test_resumed_auto_run_evaluates_where_an_uninterrupted_run_does(tmp_path):
    config = RunConfig(task="spiral", optimizer="adam", epochs=13, log_every=5)
    straight = train(config)
    path = Checkpointing(tmp_path).path(config.run_id)
    stopped = train(config, checkpointing=Checkpointing(tmp_path, every=1),
                    should_stop=lambda: path.is_file() and read_checkpoint_extra(path).epoch >= 7)  # fmt: skip
    assert (stopped.status, stopped.steps, evaluated_epochs(stopped)) == ("interrupted", 42, [6.0])
    resumed = train(config, checkpointing=Checkpointing(tmp_path, every=1, resume=True))
    assert evaluated_epochs(resumed) == [6.0, 12.0, 13.0]
    assert numbers(resumed) == numbers(straight)


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "sometimes", "", "4", None])
def test_a_bad_eval_every_names_the_value_and_the_choices(bad):
    message = f"eval_every must be 'auto' or an int >= 1 (epochs between evaluations), got {bad!r}"
    with pytest.raises(ValueError) as caught:
        run_options(RunConfig(task="spiral", optimizer="adam", extra=(("eval_every", bad),)))
    assert str(caught.value) == message
    with pytest.raises(ValueError) as caught:
        eval_every_value(bad)
    assert str(caught.value) == message


def test_sweep_config_takes_auto_or_an_int_from_toml_and_flags(tmp_path):
    assert SweepConfig().eval_every == "auto"
    assert sweep_config_from_mapping({"eval_every": 3}).eval_every == 3
    assert sweep_config_from_mapping({"eval_every": "auto"}).eval_every == "auto"
    with pytest.raises(ValueError, match=r"eval_every must be 'auto' or an int >= 1.*got 'weekly'"):
        sweep_config_from_mapping({"eval_every": "weekly"})
    with pytest.raises(ValueError, match=r"'eval_every' must be int or str, got 2.5 \(float\)"):
        sweep_config_from_mapping({"eval_every": 2.5})
    with pytest.raises(ValueError, match=r"eval_every must be 'auto' or an int >= 1 .*, got '3'"):
        SweepConfig(eval_every="3")  # the field holds ints; only the flag parses text
    parser = build_parser()
    assert parser.parse_args(["bench", "--eval-every", "auto"]).eval_every == "auto"
    assert parser.parse_args(["bench", "--eval-every", "4"]).eval_every == 4


def test_a_bad_eval_every_flag_exits_2_with_the_choices(capsys):
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["bench", "--eval-every", "0"])
    assert caught.value.code == 2
    assert "eval_every must be 'auto' or an int >= 1 (epochs between evaluations), got 0" in capsys.readouterr().err


def test_registered_task_sizes_drive_the_default_schedule(monkeypatch):
    # 40 train, 20 val, 20 test: ceil(10 * 80 / 120) = 7 epochs between evaluations.
    task = Task(name="test-sized", description="", load=lambda seed, data_dir: sized_data(40, 20, 20),
                build_model=lambda k: nn.Linear(2, k), default_batch_size=20)  # fmt: skip
    monkeypatch.setitem(registry.TASKS, task.name, task)
    result = train(RunConfig(task=task.name, optimizer="sgd", epochs=15))
    assert evaluated_epochs(result) == [7.0, 14.0, 15.0]
