"""Adam-HD in a PyTorch Lightning module, on the digits data that ship with the package.

``configure_optimizers`` returns our optimizer like any ``torch.optim`` one. Return it
alone (or with a scheduler that multiplies the current lr, such as ``MultiplicativeLR``
or ``ExponentialLR``): a ``LambdaLR`` rewrites ``param_groups[i]["lr"]`` from the initial
lr after every step and so cancels the hypergradient's adaptation.

Needs Lightning (``pip install lightning``); without it the script says so and exits 1.

    python examples/lightning_module.py --steps 300
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gradretention.optim import AdamHD
from gradretention.tasks.registry import get_task

try:
    import lightning as L
except ImportError:  # the older package name
    try:
        import pytorch_lightning as L
    except ImportError:
        L = None

INSTALL = "pip install lightning"


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


def build_module(lr: float, hypergrad_lr: float, print_every: int, num_classes: int = 10) -> "L.LightningModule":
    """The LightningModule (a factory, so that this file imports without Lightning)."""

    class DigitsModule(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, num_classes))

        def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
            pixels, labels = batch
            return nn.functional.cross_entropy(self.net(pixels), labels)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return AdamHD(self.parameters(), lr=lr, hypergrad_lr=hypergrad_lr)

        def on_train_batch_end(self, outputs: object, batch: object, batch_idx: int) -> None:
            step = self.trainer.global_step
            if step % print_every == 0 or step == self.trainer.max_steps:
                print(f"{step:>6} {self.optimizers().param_groups[0]['lr']:>10.6f}")

    return DigitsModule()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if L is None:
        print(f"This example needs PyTorch Lightning, which is not installed: {INSTALL}", file=sys.stderr)
        return 1
    L.seed_everything(args.seed, verbose=False)
    data = get_task("digits-mlp").load(0, None)
    train = DataLoader(TensorDataset(data.train.inputs, data.train.targets), batch_size=64, shuffle=True,
                       generator=torch.Generator().manual_seed(args.seed))  # fmt: skip
    module = build_module(args.lr, args.hypergrad_lr, max(1, args.steps // 10), data.num_classes)
    trainer = L.Trainer(max_steps=args.steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    print(f"{'step':>6} {'lr':>10}")
    trainer.fit(module, train)
    with torch.no_grad():
        accuracy = float((module.net(data.val.inputs).argmax(dim=1) == data.val.targets).double().mean())
    final_lr = module.optimizers().param_groups[0]["lr"]
    print(f"validation accuracy {accuracy:.3f}, final lr {final_lr:.6f} (started at {args.lr:g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
