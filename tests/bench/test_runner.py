"""The runner: exact batching and logging against a hand-written loop, seeds, statuses."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradretention.bench.events import EvalLogged, RunFinished, RunStarted, StepLogged
from gradretention.bench.memory import optimizer_state_bytes
from gradretention.bench.metering import MEASURED_FINALS
from gradretention.bench.results import RunConfig
from gradretention.bench.runner import RunInterrupted, train
from gradretention.tasks import registry
from gradretention.tasks.base import Split, Task, TaskData
from gradretention.tasks.registry import get_task

TIMING_KEYS = MEASURED_FINALS  # the finals read off clocks and memory
TIMING_CURVES = {"epoch_seconds", "samples_per_second"}


def blobs(n_per_class: int = 20, poison: bool = False) -> TaskData:
    """Three Gaussian blobs in 2-D; ``poison`` puts a NaN into the first training input."""
    g = torch.Generator().manual_seed(1)
    centers = torch.tensor([[0.0, 3.0], [3.0, 0.0], [-3.0, -3.0]])
    x = torch.cat([c + torch.randn(n_per_class, 2, generator=g) for c in centers])
    y = torch.arange(3).repeat_interleave(n_per_class)
    order = torch.randperm(len(y), generator=g)
    x, y = x[order], y[order]
    if poison:
        x[0, 0] = float("nan")
    third = len(y) // 3
    return TaskData(Split(x[:third], y[:third]), Split(x[third : 2 * third], y[third : 2 * third]),
                    Split(x[2 * third :], y[2 * third :]), num_classes=3)  # fmt: skip


def register(monkeypatch: pytest.MonkeyPatch, name: str, **fields) -> str:
    settings = {"description": "test blobs", "load": lambda seed, data_dir: blobs(),
                "build_model": lambda k: nn.Linear(2, k), "metrics": ("accuracy", "f1"),
                "default_batch_size": 16, **fields}  # fmt: skip
    monkeypatch.setitem(registry.TASKS, name, Task(name=name, **settings))
    return name


def test_logged_losses_and_evaluations_equal_a_hand_written_loop():
    config = RunConfig(task="spiral", optimizer="sgd", lr=0.1, seed=4, max_steps=12, batch_size=32, log_every=4)
    steps: list[StepLogged] = []
    result = train(config, listeners=[lambda e: steps.append(e) if isinstance(e, StepLogged) else None])

    task = get_task("spiral")
    data = task.load(0, None)
    with torch.random.fork_rng():
        torch.manual_seed(4)
        model = task.build_model(3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(4)
    losses, moments = [], []
    for _ in range(2):  # 180 training points / 32 = 6 steps per epoch; 12 steps = 2 epochs
        order = torch.randperm(len(data.train), generator=generator)
        for start in range(0, 180, 32):
            inputs, targets = data.train.batch(order[start : start + 32])
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(inputs), targets)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            grads = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double()
            moments.append((grads.mean().item(), grads.var().item()))

    assert [e.step for e in steps] == [4, 8, 12]
    for event in steps:
        window = losses[event.step - 4 : event.step]
        assert event.loss == pytest.approx(sum(window) / 4, rel=1e-12)
        assert (event.grad_mean, event.grad_var) == pytest.approx(moments[event.step - 1], rel=1e-12)
        assert event.lrs == (0.1,)
    expected = task.evaluate(model, data.val)
    assert result.final["val_loss"] == expected["loss"]
    assert result.final["val_accuracy"] == expected["accuracy"]
    assert result.status == "done" and result.steps == 12 and result.epochs_completed == 2.0


def test_same_seed_gives_identical_numbers_and_another_seed_does_not():
    config = RunConfig(task="spiral", optimizer="adam", seed=3, max_steps=20, log_every=5)
    first, second = train(config), train(config)
    other = train(RunConfig(task="spiral", optimizer="adam", seed=4, max_steps=20, log_every=5))

    def numbers(result):
        final = {k: v for k, v in result.final.items() if k not in TIMING_KEYS}
        curves = [(c.step, c.split, c.name, c.group, c.value) for c in result.curves if c.name not in TIMING_CURVES]
        return final, curves

    assert numbers(first) == numbers(second)
    assert numbers(first)[0]["train_loss"] != numbers(other)[0]["train_loss"]


def test_final_and_eval_dicts_have_the_documented_keys():
    result = train(RunConfig(task="spiral", optimizer="adam", max_steps=6))
    for key in ("train_loss", "val_loss", "val_accuracy", "val_f1", "test_loss", "test_accuracy", "test_f1",
                "best_val_accuracy", "samples_per_second", "epoch_seconds", "peak_ram_mb", "peak_vram_mb",
                "optimizer_state_bytes"):  # fmt: skip
        assert math.isfinite(result.final[key]), key
    assert set(result.eval) == {"eval_loss", "eval_accuracy", "eval_f1", "eval_runtime",
                                "eval_samples_per_second", "eval_steps_per_second", "epoch"}  # fmt: skip
    assert result.eval["eval_accuracy"] == result.final["test_accuracy"]
    assert result.eval["epoch"] == 1.0  # 6 steps of 32 on 180 points
    # Adam keeps exp_avg and exp_avg_sq per parameter (float32) and a 4-byte step per tensor.
    model = get_task("spiral").build_model(3)
    params = sum(p.numel() for p in model.parameters())
    assert result.final["optimizer_state_bytes"] == 2 * 4 * params + 4 * len(list(model.parameters()))
    assert result.provenance["device"] == "cpu"


def test_optimizer_state_bytes_counts_nested_tensors_only():
    param = nn.Parameter(torch.zeros(10, dtype=torch.float64))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    param.grad = torch.ones(10, dtype=torch.float64)
    optimizer.step()
    assert optimizer_state_bytes(optimizer) == 80  # one float64 momentum buffer


def test_run_shorter_than_an_epoch_is_evaluated_at_its_end():
    events = []
    result = train(RunConfig(task="spiral", optimizer="adam", max_steps=3, batch_size=32), listeners=[events.append])
    assert result.epochs_completed == pytest.approx(0.5)
    assert "val_accuracy" in result.final
    evals = [e for e in events if isinstance(e, EvalLogged)]
    assert [(e.step, e.split) for e in evals] == [(3, "train"), (3, "val"), (3, "test")]
    assert isinstance(events[0], RunStarted) and events[0].total_steps == 3
    assert isinstance(events[-1], RunFinished) and events[-1].result is result


def test_huge_learning_rate_is_recorded_as_diverged_with_step_and_value():
    result = train(RunConfig(task="spiral", optimizer="sgd[lr=1e6]", epochs=2))
    assert result.status == "diverged"
    assert "at step 2" in result.reason and "exceeds 100x" in result.reason
    assert "test_accuracy" not in result.final  # a diverged model's accuracy is noise


def test_nan_loss_is_recorded_as_diverged_at_its_step(monkeypatch):
    name = register(monkeypatch, "test-nan-blobs", load=lambda seed, data_dir: blobs(poison=True))
    result = train(RunConfig(task=name, optimizer="sgd", batch_size=0, epochs=3))
    assert result.status == "diverged"
    assert result.reason == "training loss nan at step 1 is not finite"


def test_exception_while_training_is_an_error_with_the_run_context(monkeypatch):
    name = register(monkeypatch, "test-two-outputs", build_model=lambda k: nn.Linear(2, 2))  # 3 classes
    result = train(RunConfig(task=name, optimizer="adam", seed=3, max_steps=5))
    assert result.status == "error"
    assert result.reason.startswith(f"while running 'adam' on task '{name}' (seed 3): ")
    assert "out of bounds" in result.reason


def test_bad_hyperparameter_or_task_raises_before_training():
    events = []
    with pytest.raises(ValueError, match=r"Invalid lr value: -1"):
        train(RunConfig(task="spiral", optimizer="sgd[lr=-1]"), listeners=[events.append])
    with pytest.raises(ValueError, match=r"Did you mean 'spiral'"):
        train(RunConfig(task="spirl", optimizer="sgd"))
    with pytest.raises(ValueError, match=r"unknown run option 'decay'.*lr_decay, eval_every"):
        train(RunConfig(task="spiral", optimizer="sgd", extra=(("decay", 0.1),)))
    assert events == []


def test_steps_to_target_is_the_first_validation_reaching_it(monkeypatch):
    easy = register(monkeypatch, "test-easy", target_value=0.0)
    never = register(monkeypatch, "test-never", target_value=1.01)
    per_epoch = (("eval_every", 1),)
    reached = train(RunConfig(task=easy, optimizer="adam", epochs=2, extra=per_epoch))
    assert reached.steps_to_target == 2  # 20 training points, batches of 16: first epoch ends at step 2
    assert reached.seconds_to_target is not None and reached.seconds_to_target > 0
    # The default schedule evaluates train and test of these 20/20/20 splits every 10 epochs,
    # but validation after every epoch: the target counts at the first epoch's end all the same.
    default = train(RunConfig(task=easy, optimizer="adam", epochs=2))
    assert default.steps_to_target == 2 and default.final["val_target"] == 0.0
    missed = train(RunConfig(task=never, optimizer="adam", epochs=2, extra=per_epoch))
    assert missed.steps_to_target is None and missed.seconds_to_target is None


def test_lr_decay_option_divides_the_lr_by_one_plus_decay_times_steps():
    steps = []
    config = RunConfig(task="spiral", optimizer="sgd", lr=0.5, max_steps=3, log_every=1, extra=(("lr_decay", 0.1),))
    train(config, listeners=[lambda e: steps.append(e) if isinstance(e, StepLogged) else None])
    # Logged after step t: the lr the next step will use, 0.5 / (1 + 0.1 t).
    assert [e.lrs[0] for e in steps] == pytest.approx([0.5 / 1.1, 0.5 / 1.2, 0.5 / 1.3])


def test_should_stop_ends_the_run_as_interrupted():
    result = train(RunConfig(task="spiral", optimizer="adam", epochs=5, log_every=2), should_stop=lambda: True)
    assert result.status == "interrupted"
    assert result.reason == "stop requested at step 2"


def test_ctrl_c_is_recorded_then_raised():
    seen = []

    def listener(event):
        seen.append(event)
        if isinstance(event, StepLogged):
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted) as caught:
        train(RunConfig(task="spiral", optimizer="adam", epochs=5, log_every=3), listeners=[listener])
    assert caught.value.result.status == "interrupted"
    assert "at step 3" in caught.value.result.reason
    assert isinstance(seen[-1], RunFinished) and seen[-1].result is caught.value.result


def test_lr_decay_keeps_what_a_hypergradient_controller_did_to_alpha():
    steps = []
    config = RunConfig(task="spiral", optimizer="sgd_hd[hypergrad_lr=0.01]", lr=0.1, max_steps=4, log_every=1,
                       extra=(("lr_decay", 0.1),))
    train(config, listeners=[lambda e: steps.append(e) if isinstance(e, StepLogged) else None])
    lrs = [e.lrs[0] for e in steps]
    plain = [0.1 / (1 + 0.1 * t) for t in range(1, 5)]
    # The decay is multiplicative on top of the adapted α, so after step 1 the two differ.
    assert lrs[0] == pytest.approx(plain[0])
    assert lrs[2] != pytest.approx(plain[2])


class EvalProbe(nn.Module):
    """A linear model that notes the size of every batch it sees in eval mode."""

    def __init__(self, num_classes: int, seen: list[int]) -> None:
        super().__init__()
        self.linear, self.seen = nn.Linear(2, num_classes), seen

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training:
            self.seen.append(int(inputs.shape[0]))
        return self.linear(inputs)


@pytest.mark.parametrize(("evaluate_train", "expected"), [(True, [7, 7, 6] * 3), (False, [7, 7, 6] * 2)])
def test_evaluation_uses_the_tasks_eval_batch_size(monkeypatch, evaluate_train, expected):
    seen: list[int] = []
    name = register(monkeypatch, "test-eval-batches", build_model=lambda k: EvalProbe(k, seen), eval_batch_size=7,
                    evaluate_train=evaluate_train)  # fmt: skip
    result = train(RunConfig(task=name, optimizer="adam", epochs=1))
    # 20 examples per split in batches of 7: train (unless skipped), val, test.
    assert seen == expected
    batches = result.eval["eval_steps_per_second"] * result.eval["eval_runtime"]
    assert batches == pytest.approx(3)  # ceil(20 / 7) batches over the test split


def test_eval_batch_size_must_be_a_positive_int():
    with pytest.raises(ValueError, match=r"eval_batch_size must be an int >= 1, got 0 \(task 'x'\)"):
        Task(name="x", description="", load=lambda seed, data_dir: blobs(), build_model=lambda k: nn.Linear(2, k),
             eval_batch_size=0)  # fmt: skip


def test_bert_tasks_evaluate_in_small_batches_and_skip_the_train_split():
    for name, size in (("imdb-bert", 64), ("agnews-bert", 128), ("squad-bert", 32)):
        task = get_task(name)
        assert (task.eval_batch_size, task.evaluate_train) == (size, False), name
    assert (get_task("digits-mlp").eval_batch_size, get_task("digits-mlp").evaluate_train) == (1024, True)
