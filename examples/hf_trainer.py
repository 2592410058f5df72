"""Adam-HD inside Hugging Face's ``Trainer``, on the digits data that ship with the package.

The optimizer goes in through ``Trainer(optimizers=(optimizer, scheduler))``. Offline and
CPU-only: the model is a small ``nn.Module`` whose ``forward`` returns a dict with ``loss``
when it gets ``labels``, which is all ``Trainer`` needs from a model.

Why not ``optimizers=(optimizer, None)``? Then ``Trainer`` builds its own scheduler (a
``LambdaLR``, even for ``lr_scheduler_type="constant"``), and a ``LambdaLR`` writes
``initial_lr × factor`` into ``param_groups[i]["lr"]`` after every step: it throws the
hypergradient's lr away each step and the run is plain Adam. Any torch scheduler that
*multiplies* the current lr composes instead; ``MultiplicativeLR`` with factor 1 keeps the
lr exactly where the optimizer put it (use a factor < 1 for a decay on top).

    python examples/hf_trainer.py --steps 300
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from gradretention.optim import AdamHD
from gradretention.tasks.base import Split
from gradretention.tasks.registry import get_task


class DigitsDataset(Dataset):
    """One split as ``{"pixels": (64,), "labels": ()}`` items for the default collator."""

    def __init__(self, split: Split) -> None:
        self.pixels, self.labels = split.inputs, split.targets

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixels": self.pixels[index], "labels": self.labels[index]}


class DigitsClassifier(nn.Module):
    """64 -> 128 -> ReLU -> 10, returning ``{"loss", "logits"}`` as ``Trainer`` expects."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, pixels: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.net(pixels)
        if labels is None:
            return {"logits": logits}
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


class PrintLearningRate(TrainerCallback):
    """Print the lr the optimizer is using every ``every`` steps."""

    def __init__(self, optimizer: torch.optim.Optimizer, every: int) -> None:
        self.optimizer, self.every = optimizer, every

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201 - Trainer's hook
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            print(f"{state.global_step:>6} {self.optimizer.param_groups[0]['lr']:>10.6f}")


def accuracy(prediction) -> dict[str, float]:  # noqa: ANN001 - transformers.EvalPrediction
    predicted = np.argmax(prediction.predictions, axis=1)
    return {"accuracy": float((predicted == prediction.label_ids).mean())}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps (default 300)")
    parser.add_argument("--lr", type=float, default=1e-3, help="initial learning rate α0")
    parser.add_argument("--hypergrad-lr", type=float, default=1e-6, help="β, the lr of the lr; 0 is plain Adam")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    data = get_task("digits-mlp").load(0, None)
    model = DigitsClassifier(data.num_classes)
    optimizer = AdamHD(model.parameters(), lr=args.lr, hypergrad_lr=args.hypergrad_lr)
    keep_lr = torch.optim.lr_scheduler.MultiplicativeLR(optimizer, lambda epoch: 1.0)
    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(
            output_dir=out, max_steps=args.steps, per_device_train_batch_size=64, per_device_eval_batch_size=256,
            seed=args.seed, use_cpu=True, report_to="none", save_strategy="no", logging_strategy="no",
            disable_tqdm=True, dataloader_num_workers=0,
        )  # fmt: skip
        trainer = Trainer(
            model=model, args=training, train_dataset=DigitsDataset(data.train), eval_dataset=DigitsDataset(data.val),
            optimizers=(optimizer, keep_lr), compute_metrics=accuracy,
            callbacks=[PrintLearningRate(optimizer, every=max(1, args.steps // 10))],
        )  # fmt: skip
        print(f"{'step':>6} {'lr':>10}")
        trainer.train()
        metrics = trainer.evaluate()
    print(f"validation accuracy {metrics['eval_accuracy']:.3f}, loss {metrics['eval_loss']:.4f}, "
          f"final lr {optimizer.param_groups[0]['lr']:.6f} (started at {args.lr:g})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
