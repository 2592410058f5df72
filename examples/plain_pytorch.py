"""Adam-HD in a plain PyTorch training loop, on the digits data that ship with the package.

AdamHD is a drop-in ``torch.optim.Optimizer``: the loop below is the textbook one. What
changes is that the learning rate is no longer a constant you pick once: after every step
``optimizer.param_groups[0]["lr"]`` holds the lr that hypergradient descent chose, and the
script prints its trajectory next to the loss.

    python examples/plain_pytorch.py --steps 300
    python examples/plain_pytorch.py --steps 300 --hypergrad-lr 0   # plain Adam, for comparison
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from torch import nn

from gradretention.optim import AdamHD
from gradretention.tasks.registry import get_task


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps (default 300)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="initial learning rate α0")
    parser.add_argument("--hypergrad-lr", type=float, default=1e-6, help="β, the lr of the lr; 0 is plain Adam")
    parser.add_argument("--print-every", type=int, default=0, help="steps between lines (default: ~10 lines)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        parser.error(f"--steps and --batch-size must be >= 1, got {args.steps} and {args.batch_size}")
    return args


def accuracy(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(inputs).argmax(dim=1) == targets).double().mean())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    # 8x8 digit images, flattened and standardized; split 60/20/20 by data seed 0.
    data = get_task("digits-mlp").load(0, None)
    x_train, y_train = data.train.inputs, data.train.targets
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, data.num_classes))
    optimizer = AdamHD(model.parameters(), lr=args.lr, hypergrad_lr=args.hypergrad_lr)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(args.seed)  # the batch order, reproducible
    print_every = args.print_every or max(1, args.steps // 10)

    print(f"{'step':>6} {'loss':>8} {'lr':>10}")
    order, position = torch.randperm(len(y_train), generator=generator), 0
    for step in range(1, args.steps + 1):
        if position + args.batch_size > len(order):  # a new epoch: a new permutation
            order, position = torch.randperm(len(y_train), generator=generator), 0
        index = order[position : position + args.batch_size]
        position += args.batch_size

        optimizer.zero_grad()
        loss = loss_fn(model(x_train[index]), y_train[index])
        loss.backward()
        optimizer.step()  # updates the lr first (hypergradient), then the weights with it

        if step % print_every == 0 or step == args.steps:
            print(f"{step:>6} {loss.item():>8.4f} {optimizer.param_groups[0]['lr']:>10.6f}")

    print(f"validation accuracy {accuracy(model, data.val.inputs, data.val.targets):.3f}, "
          f"final lr {optimizer.param_groups[0]['lr']:.6f} (started at {args.lr:g})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
