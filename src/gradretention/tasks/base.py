"""The task contract: a dataset held as tensors, a model factory, a loss and metrics.

The runner is task-agnostic: it only batches :class:`Split` objects by index
permutation, calls :meth:`Task.batch_loss` to train and :meth:`Task.evaluate` to
measure. Inputs may be one tensor or a dict of tensors (e.g. token ids and masks);
every tensor in a split has the number of examples as its first dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

Inputs = torch.Tensor | dict[str, torch.Tensor]
TRAIN_LOSS_TARGET_SHARE = 0.3  # the default train-loss target, as a share of a uniform guess's ln(classes)


@dataclass(frozen=True)
class Split:
    """One split of a dataset: inputs and targets indexed along dim 0."""

    inputs: Inputs
    targets: torch.Tensor | dict[str, torch.Tensor]

    def __len__(self) -> int:
        first = self.inputs if isinstance(self.inputs, torch.Tensor) else next(iter(self.inputs.values()))
        return int(first.shape[0])

    def batch(self, index: torch.Tensor) -> tuple[Inputs, Any]:
        """The examples at ``index`` (a 1-D long tensor on the data's device)."""
        return _take(self.inputs, index), _take(self.targets, index)

    def rows(self, start: int, stop: int) -> tuple[Inputs, Any]:
        """The examples ``start .. stop - 1`` as views: no copy, unlike :meth:`batch`."""
        return _slice(self.inputs, start, stop), _slice(self.targets, start, stop)

    def to(self, device: torch.device | str) -> "Split":
        return Split(_move(self.inputs, device), _move(self.targets, device))


@dataclass(frozen=True)
class TaskData:
    """Fixed train / validation / test splits for one data seed. Validation chooses, test reports."""

    train: Split
    val: Split
    test: Split
    num_classes: int
    info: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> "TaskData":
        return TaskData(self.train.to(device), self.val.to(device), self.test.to(device), self.num_classes, self.info)


def _take(value: Any, index: torch.Tensor) -> Any:
    # index_select, not value[index]: the same rows without advanced indexing's set-up
    # (on the CPU 2.6 instead of 5.0 us for a batch of 100 rows of 40 floats).
    if isinstance(value, dict):
        return {key: tensor.index_select(0, index) for key, tensor in value.items()}
    return value.index_select(0, index)


def _slice(value: Any, start: int, stop: int) -> Any:
    if isinstance(value, dict):
        return {key: tensor[start:stop] for key, tensor in value.items()}
    return value[start:stop]


def _move(value: Any, device: torch.device | str) -> Any:
    if isinstance(value, dict):
        return {key: tensor.to(device) for key, tensor in value.items()}
    return value.to(device)


@dataclass(frozen=True)
class Task:
    """A named benchmark problem.

    Args:
        name: registry key, lowercase with dashes (``digits-mlp``).
        description: one line for ``gradretention list tasks``.
        load: ``(data_seed, data_dir) -> TaskData``; raises ``FileNotFoundError`` with
            what to put where when its files are missing.
        build_model: ``(num_classes) -> nn.Module``; the caller seeds torch before calling.
        target_metric / target_value: "steps to target" counts steps until the
            validation ``target_metric`` first reaches ``target_value``.
        train_loss_target: the training-loss target of "train steps to target" (see
            :meth:`train_target`); ``None``: :data:`TRAIN_LOSS_TARGET_SHARE` of the loss of a
            uniform guess, ``0.3 * ln(num_classes)``.
        chance_value: the target metric's chance level (what a failed run scores, see
            :meth:`chance_level`); ``None``: derived from the metric and the class count.
        metrics: names that :meth:`evaluate` returns besides ``loss``.
        default_epochs / default_batch_size / default_lr: the harness defaults.
        loss_fn: ``(model_output, targets) -> scalar loss`` (mean over the batch).
        metric_fn: ``(outputs list, targets list) -> dict`` over a whole split.
        augment: optional ``(inputs, generator) -> inputs`` applied to train batches.
        eval_batch_size: examples per forward pass in :meth:`evaluate` (no gradients kept, so
            larger than the training batch; small for big encoders, whose activations dominate).
        evaluate_train: evaluate the whole train split at each evaluation; ``False`` (the
            BERT tasks) reports the running training loss since the last evaluation instead,
            which costs nothing where a pass over the train split costs an epoch's forwards.
        held_out: whether validation and test are held out from training. ``False`` (the
            lecture's ``spiral-nnfs``, which reports accuracy on its training points) means no
            fair tuning protocol can score it, so ``all`` and the main job leave it out.
    """

    name: str
    description: str
    load: Callable[[int, Path | None], TaskData]
    build_model: Callable[[int], nn.Module]
    target_metric: str = "accuracy"
    target_value: float = 0.9
    metrics: tuple[str, ...] = ("accuracy",)
    default_epochs: int = 10
    default_batch_size: int = 64
    default_lr: float = 1e-3
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None
    metric_fn: Callable[[list[Any], list[Any]], dict[str, float]] | None = None
    augment: Callable[[Inputs, torch.Generator], Inputs] | None = None
    needs_download: bool = False
    eval_batch_size: int = 1024
    evaluate_train: bool = True
    train_loss_target: float | None = None
    chance_value: float | None = None
    held_out: bool = True

    def __post_init__(self) -> None:
        size = self.eval_batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"eval_batch_size must be an int >= 1, got {self.eval_batch_size!r} (task {self.name!r})")

    def chance_level(self, num_classes: int) -> float:
        """The target metric of a model that guesses: what a diverged or failed run scores.

        ``chance_value`` when set; else for ``accuracy`` / ``pixel_accuracy`` a uniform guess
        over the classes, ``1 / num_classes``; for ``loss`` its cross-entropy, ``ln(num_classes)``;
        for the other metrics (``f1``, ``miou``, ``exact_match``) 0.
        """
        if self.chance_value is not None:
            return float(self.chance_value)
        classes = max(int(num_classes), 1)
        if self.target_metric in ("accuracy", "pixel_accuracy"):
            return 1.0 / classes
        return math.log(classes) if self.target_metric == "loss" else 0.0

    def train_target(self, num_classes: int) -> float:
        """The training-loss target: ``train_loss_target``, else a share of a guess's loss.

        The default, ``0.3 * ln(num_classes)`` (0.69 for ten classes, 0.33 for three), is the
        cross-entropy at which a model puts (geometric mean) ``num_classes ** -0.3`` of its mass
        on the right class (0.5 for ten): well past guessing, and reached by tuned Adam on every
        embedded task (MNIST-1D's MLP ends near 0.55; at 0.25 · ln 10 = 0.58 it missed).
        """
        if self.train_loss_target is not None:
            return float(self.train_loss_target)
        return TRAIN_LOSS_TARGET_SHARE * math.log(max(int(num_classes), 2))

    def batch_loss(self, model: nn.Module, inputs: Inputs, targets: Any) -> torch.Tensor:
        """Mean training loss of one batch."""
        outputs = model(**inputs) if isinstance(inputs, dict) else model(inputs)
        return self._loss(outputs, targets)

    def _loss(self, outputs: Any, targets: Any) -> torch.Tensor:
        if self.loss_fn is not None:
            return self.loss_fn(outputs, targets)
        return nn.functional.cross_entropy(outputs, targets)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: Split, batch_size: int | None = None) -> dict[str, float]:
        """``loss`` plus :attr:`metrics` over the whole split, in eval mode, no grad.

        ``batch_size`` defaults to :attr:`eval_batch_size`. The loss is summed on the
        device in float64 (each batch's mean times its size, in batch order) and read once.
        """
        batch_size = self.eval_batch_size if batch_size is None else batch_size
        was_training = model.training
        model.eval()
        n = len(split)
        total_loss = torch.zeros((), dtype=torch.float64, device=_device_of(split))
        outputs_seen, targets_seen = [], []
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            inputs, targets = split.rows(start, stop)
            outputs = model(**inputs) if isinstance(inputs, dict) else model(inputs)
            total_loss += self._loss(outputs, targets).double() * (stop - start)
            outputs_seen.append(_detach(outputs))
            targets_seen.append(targets)
        model.train(was_training)
        metric_fn = self.metric_fn or classification_metrics
        result = {"loss": float(total_loss) / max(n, 1)}
        result.update(metric_fn(outputs_seen, targets_seen))
        return result


def _device_of(split: Split) -> torch.device:
    first = split.inputs if isinstance(split.inputs, torch.Tensor) else next(iter(split.inputs.values()))
    return first.device


def _detach(outputs: Any) -> Any:
    if isinstance(outputs, torch.Tensor):
        return outputs.detach()
    if isinstance(outputs, dict):
        return {key: value.detach() for key, value in outputs.items()}
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(value.detach() for value in outputs)
    return outputs


def classification_metrics(outputs: list[torch.Tensor], targets: list[torch.Tensor]) -> dict[str, float]:
    """Accuracy and macro-F1 from logits, computed on the device with one host sync."""
    logits = torch.cat(outputs)
    labels = torch.cat(targets)
    predicted = logits.argmax(dim=1)
    num_classes = logits.shape[1]
    # Confusion counts by bincount keep it on the device and O(n).
    confusion = torch.bincount(labels * num_classes + predicted, minlength=num_classes**2)
    confusion = confusion.reshape(num_classes, num_classes).double()
    true_positive = confusion.diagonal()
    precision_den = confusion.sum(dim=0)
    recall_den = confusion.sum(dim=1)
    f1_den = precision_den + recall_den
    f1 = torch.where(f1_den > 0, 2 * true_positive / f1_den.clamp_min(1), torch.zeros_like(f1_den))
    # As scikit-learn's macro average: over every label that occurs in truth or prediction.
    present = f1_den > 0
    macro_f1 = f1[present].mean()  # NaN when no label is present: an empty split
    accuracy = true_positive.sum() / confusion.sum().clamp_min(1)
    accuracy_value, f1_value = torch.stack([accuracy, macro_f1]).tolist()
    return {"accuracy": accuracy_value, "f1": 0.0 if math.isnan(f1_value) else f1_value}
