"""Checkpoints: a run stopped after some epochs and resumed ends with an uninterrupted run's numbers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradretention.bench.checkpoint import checkpoint_path, read_checkpoint_extra
from gradretention.bench.events import EvalLogged, StepLogged
from gradretention.bench.metering import MEASURED_FINALS
from gradretention.bench.results import RunConfig
from gradretention.bench.runner import CHECKPOINT_ENV, Checkpointing, train
from gradretention.tasks import registry
from gradretention.tasks.base import Split, Task, TaskData

TIMING_KEYS = MEASURED_FINALS  # the finals read off clocks and memory


def numbers(result):
    """Everything a run reports except wall-clock timings and memory peaks."""
    final = {k: v for k, v in result.final.items() if k not in TIMING_KEYS}
    curves = [(c.step, c.epoch, c.split, c.name, c.group, c.value) for c in result.curves if c.name not in TIMING_KEYS]
    evaluation = {k: v for k, v in result.eval.items() if k in ("eval_loss", "eval_accuracy", "eval_f1", "epoch")}
    return final, curves, evaluation, result.status, result.steps, result.epochs_completed, result.steps_to_target


def stopped_after(epochs: int, config: RunConfig, checkpointing: Checkpointing):
    """Run ``config`` until its checkpoint holds ``epochs`` epochs, then stop it (as Ctrl-C would)."""
    path = checkpointing.path(config.run_id)

    def should_stop() -> bool:
        return path.is_file() and read_checkpoint_extra(path).epoch >= epochs

    return train(config, checkpointing=checkpointing, should_stop=should_stop)


@pytest.mark.parametrize(
    ("optimizer", "extra"),
    [
        ("sgd[momentum=0.9]", (("lr_decay", 0.01),)),  # a scheduler's state
        ("adam_hd[hypergrad_lr=1e-05]", ()),  # an adapted lr in the optimizer state
        ("enhanced_sgd", ()),  # noise drawn from the optimizer's own generator
    ],
)
def test_resumed_run_equals_an_uninterrupted_run_bit_for_bit(tmp_path, optimizer, extra):
    # spiral: 180 training points in batches of 32 = 6 steps per epoch; logs every 5 steps
    # straddle epoch ends, so the epoch-2 checkpoint (step 12) holds the losses of steps 11-12.
    config = RunConfig(task="spiral", optimizer=optimizer, epochs=4, log_every=5, extra=extra)
    straight = train(config)
    settings = Checkpointing(tmp_path, every=1)

    first = stopped_after(2, config, settings)
    assert (first.status, first.steps) == ("interrupted", 12)
    assert read_checkpoint_extra(settings.path(config.run_id)).epoch == 2

    resumed = train(config, checkpointing=Checkpointing(tmp_path, every=1, resume=True))
    assert numbers(resumed) == numbers(straight)
    assert read_checkpoint_extra(settings.path(config.run_id)).epoch == 4


def blob_data() -> TaskData:
    g = torch.Generator().manual_seed(5)
    centers = torch.tensor([[0.0, 3.0], [3.0, 0.0], [-3.0, -3.0]])
    x = torch.cat([c + torch.randn(20, 2, generator=g) for c in centers])
    y = torch.arange(3).repeat_interleave(20)
    order = torch.randperm(60, generator=g)
    x, y = x[order], y[order]
    return TaskData(Split(x[:40], y[:40]), Split(x[40:50], y[40:50]), Split(x[50:], y[50:]), num_classes=3)


def jitter(inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return inputs + 0.1 * torch.randn(inputs.shape, generator=generator)


@pytest.fixture
def dropout_task(monkeypatch) -> str:
    """Dropout (global RNG), augmentation (the run's generator) and no train-split evaluation."""
    task = Task(name="test-dropout-blobs", description="blobs with dropout", load=lambda seed, data_dir: blob_data(),
                build_model=lambda k: nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, k)),
                default_batch_size=8, augment=jitter, evaluate_train=False)  # fmt: skip
    monkeypatch.setitem(registry.TASKS, task.name, task)
    return task.name


def test_resume_restores_dropout_augmentation_and_the_running_train_loss(tmp_path, dropout_task):
    # 40 points / 8 = 5 steps per epoch; evaluations every 2 epochs, checkpoints every epoch:
    # the epoch-3 checkpoint (step 15) holds a running loss that the epoch-4 evaluation
    # reports, and the losses of steps 13-15 that the step-16 log averages.
    config = RunConfig(task=dropout_task, optimizer="adam", epochs=5, log_every=4, extra=(("eval_every", 2),))
    straight = train(config)
    first = stopped_after(3, config, Checkpointing(tmp_path, every=1))
    assert (first.status, first.steps) == ("interrupted", 15)
    resumed = train(config, checkpointing=Checkpointing(tmp_path, every=1, resume=True))
    assert numbers(resumed) == numbers(straight)


class Overshoot(nn.Module):
    """Logits ``p`` (3 entries, all 1 at first) for every input; with the loss mean(p²) and sgd
    at lr 3.15 each step maps p to (1 - 2 * 3.15 / 3) p = -1.1 p."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(num_classes))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.p.expand(inputs.shape[0], -1)


def test_divergence_limit_from_the_first_step_survives_a_resume(tmp_path, monkeypatch):
    # Loss 1.21^(t-1) at step t: above 100x the first loss (1) from step 26 on. A resumed run
    # that re-measured its reference at step 13 (loss 9.8) would only stop at step 38.
    task = Task(name="test-overshoot", description="p² overshooting", load=lambda seed, data_dir: blob_data(),
                build_model=Overshoot, default_batch_size=8, loss_fn=lambda out, targets: (out**2).mean())  # fmt: skip
    monkeypatch.setitem(registry.TASKS, task.name, task)
    config = RunConfig(task=task.name, optimizer="sgd[lr=3.15]", epochs=10, log_every=5)  # 5 steps per epoch
    straight = train(config)
    assert straight.status == "diverged" and "at step 26 exceeds 100x the first step's loss (1)" in straight.reason
    stopped_after(2, config, Checkpointing(tmp_path, every=1))
    resumed = train(config, checkpointing=Checkpointing(tmp_path, every=1, resume=True))
    assert (resumed.reason, numbers(resumed)) == (straight.reason, numbers(straight))


def test_running_train_loss_replaces_the_train_split_evaluation(dropout_task):
    steps, evals = [], []
    config = RunConfig(task=dropout_task, optimizer="adam", epochs=4, log_every=1, extra=(("eval_every", 2),))

    def listen(event):
        if isinstance(event, StepLogged):
            steps.append(event.loss)
        elif isinstance(event, EvalLogged):
            evals.append(event)

    result = train(config, listeners=[listen])
    train_evals = [e for e in evals if e.split == "train"]
    assert [(e.step, set(e.metrics)) for e in train_evals] == [(10, {"loss"}), (20, {"loss"})]
    # Each is the mean of the training losses since the previous evaluation (steps 1-10, 11-20).
    assert train_evals[0].metrics["loss"] == pytest.approx(sum(steps[:10]) / 10, rel=1e-12)
    assert result.final["train_loss"] == pytest.approx(sum(steps[10:]) / 10, rel=1e-12)
    assert "train_accuracy" not in result.final and math.isfinite(result.final["val_accuracy"])


def test_last_epoch_is_always_checkpointed_with_what_gradcam_reads(tmp_path):
    config = RunConfig(task="spiral", optimizer="adam", epochs=4, data_seed=2)
    train(config, checkpointing=Checkpointing(tmp_path, every=3))
    saved = read_checkpoint_extra(checkpoint_path(tmp_path, config.run_id))
    assert saved.epoch == 4  # every=3 wrote epoch 3, then the run's end overwrote it
    assert (saved.extra["task"], saved.extra["data_seed"], saved.extra["step"]) == ("spiral", 2, 24)


def test_no_checkpoint_without_every_and_resume_without_one_starts_afresh(tmp_path):
    config = RunConfig(task="spiral", optimizer="adam", epochs=2)
    fresh = train(config, checkpointing=Checkpointing(tmp_path, every=0, resume=True))
    assert not checkpoint_path(tmp_path, config.run_id).exists()
    assert numbers(fresh) == numbers(train(config))


def test_a_checkpoint_of_another_config_is_refused_before_training(tmp_path):
    short = RunConfig(task="spiral", optimizer="adam", epochs=1)
    longer = RunConfig(task="spiral", optimizer="adam", epochs=3)
    train(short, checkpointing=Checkpointing(tmp_path, every=1))
    target = checkpoint_path(tmp_path, longer.run_id)
    checkpoint_path(tmp_path, short.run_id).rename(target)
    events = []
    with pytest.raises(ValueError, match=r"is the checkpoint of another run config.*without --resume") as caught:
        train(longer, listeners=[events.append], checkpointing=Checkpointing(tmp_path, resume=True))
    assert str(target) in str(caught.value) and events == []


def test_checkpointing_round_trips_through_the_environment(tmp_path, monkeypatch):
    settings = Checkpointing(tmp_path, every=2, resume=True)
    assert Checkpointing.from_environment(settings.environment()) == settings
    assert Checkpointing.from_environment({}) is None
    with pytest.raises(ValueError, match=r"GRADRETENTION_CHECKPOINT_EVERY must be an int >= 0, got 'two'"):
        Checkpointing.from_environment({CHECKPOINT_ENV[0]: str(tmp_path), CHECKPOINT_ENV[1]: "two"})
    with pytest.raises(ValueError, match=r"checkpoint every must be an int >= 0.*got -1"):
        Checkpointing(tmp_path, every=-1)
    # train() reads the environment when not given settings: how sweep workers receive them.
    for name, value in settings.environment().items():
        monkeypatch.setenv(name, value)
    config = RunConfig(task="spiral", optimizer="adam", epochs=2)
    train(config)
    assert read_checkpoint_extra(checkpoint_path(tmp_path, config.run_id)).epoch == 2
