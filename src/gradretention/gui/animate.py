"""The decision boundary forming during training, one panel per optimizer, as a GIF or MP4.

For each optimizer the task's model is trained from the same seed (same init, same batch
order); at ``frames`` evenly spaced steps, from before the first update to the last,
the model classifies every point of a grid over the inputs and is scored on the
validation split. Panels sit side by side with the validation accuracy in each title.
GIFs are written with Pillow; ``.mp4`` needs ffmpeg on the PATH.

Example::

    gradretention animate --task spiral --optimizers sgd,adagrad,momentum,adam_hd --out spiral.gif
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib import animation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from gradretention.gui.controls import split_optimizer_list
from gradretention.gui.worker import check_optimizer_specs
from gradretention.optim import create_optimizer
from gradretention.tasks.base import Task, TaskData
from gradretention.tasks.registry import get_task

FORMATS = (".gif", ".mp4")
REGION_COLOURS = ("#cfe0f3", "#fbd9c0", "#cdebc8", "#f3c9cb", "#e0d6ee", "#e6dacd", "#f7d7ec", "#dddddd")
MARGIN = 0.1  # grid margin around the data, in input units


@dataclass(frozen=True)
class BoundaryFrames:
    """One optimizer's boundary over training: ``classes[i]`` is the grid's labels at ``steps[i]``."""

    optimizer: str
    steps: tuple[int, ...]
    epochs: tuple[float, ...]
    classes: np.ndarray  # (frames, resolution, resolution) predicted class per grid point
    accuracies: tuple[float, ...]  # validation accuracy at each frame


def input_grid(points: torch.Tensor, resolution: int) -> tuple[torch.Tensor, tuple[float, float, float, float]]:
    """``resolution²`` points covering ``points`` (plus :data:`MARGIN`), row-major from the bottom."""
    low = points.min(dim=0).values - MARGIN
    high = points.max(dim=0).values + MARGIN
    xs = torch.linspace(float(low[0]), float(high[0]), resolution)
    ys = torch.linspace(float(low[1]), float(high[1]), resolution)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    extent = (float(low[0]), float(high[0]), float(low[1]), float(high[1]))
    return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1), extent


def check_two_dimensional(task: Task, data: TaskData) -> None:
    """Decision boundaries are drawn in the input plane, so inputs must be 2-D points.

    Raises:
        ValueError: naming the task and its input shape.
    """
    inputs = data.train.inputs
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 2 or inputs.shape[1] != 2:
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else "a dict of tensors"
        raise ValueError(f"task {task.name!r} has inputs of shape {shape}; the animation needs 2-D points "
                         "(a task such as 'spiral')")


def frame_steps(total_steps: int, frames: int) -> list[int]:
    """``frames`` distinct steps from 0 (before training) to ``total_steps``, evenly spread.

    Raises:
        ValueError: fewer than 2 frames, or more frames than there are steps to show.
    """
    if frames < 2:
        raise ValueError(f"frames must be >= 2, got {frames}")
    if frames > total_steps + 1:
        raise ValueError(f"frames ({frames}) exceeds the training steps + 1 ({total_steps + 1}); "
                         "lower --frames or raise --epochs")
    return [round(i * total_steps / (frames - 1)) for i in range(frames)]


def boundary_frames(task: Task, data: TaskData, spec: str, epochs: int, frames: int, seed: int = 0,
                    resolution: int = 120) -> BoundaryFrames:  # fmt: skip
    """Train ``spec`` on ``task`` for ``epochs`` and record the boundary at ``frames`` steps."""
    grid, _ = input_grid(data.train.inputs, resolution)
    n, size = len(data.train), min(task.default_batch_size or len(data.train), len(data.train))
    steps_per_epoch = math.ceil(n / size)
    wanted = frame_steps(epochs * steps_per_epoch, frames)
    steps, classes, accuracies = [], [], []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = task.build_model(data.num_classes)
        optimizer = create_optimizer(spec, model.parameters())
        generator = torch.Generator().manual_seed(seed)
        step = 0
        for _ in range(epochs + 1):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, size):
                while wanted and wanted[0] == step:
                    wanted.pop(0)
                    steps.append(step)
                    classes.append(_classify(model, grid).reshape(resolution, resolution))
                    accuracies.append(task.evaluate(model, data.val)["accuracy"])
                if not wanted:
                    break
                _train_step(task, model, optimizer, *data.train.batch(order[start : start + size]))
                step += 1
    return BoundaryFrames(spec, tuple(steps), tuple(s / steps_per_epoch for s in steps), np.stack(classes),
                          tuple(accuracies))


@torch.no_grad()
def _classify(model: torch.nn.Module, grid: torch.Tensor) -> np.ndarray:
    was_training = model.training
    model.eval()
    labels = model(grid).argmax(dim=1).numpy()
    model.train(was_training)
    return labels


def _train_step(task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                inputs: torch.Tensor, targets: torch.Tensor) -> None:  # fmt: skip
    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = task.batch_loss(model, inputs, targets)
        loss.backward()
        return loss

    optimizer.step(closure)


def write_animation(runs: list[BoundaryFrames], data: TaskData, out: Path, fps: int = 10, dpi: int = 80) -> Path:
    """Render the panels frame by frame into ``out`` (``.gif`` via Pillow, ``.mp4`` via ffmpeg).

    Raises:
        ValueError: an unsupported suffix, or ``.mp4`` without ffmpeg.
    """
    writer = _writer_for(out, fps)
    points, labels = data.train.inputs.numpy(), data.train.targets.numpy()
    _, extent = input_grid(data.train.inputs, runs[0].classes.shape[1])
    figure = Figure(figsize=(3.0 * len(runs), 3.3), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = np.atleast_1d(figure.subplots(1, len(runs)))
    cmap = ListedColormap(REGION_COLOURS[: data.num_classes])
    images = []
    for ax, run in zip(axes, runs):
        images.append(ax.imshow(run.classes[0], origin="lower", extent=extent, cmap=cmap, vmin=0,
                                vmax=data.num_classes - 1, interpolation="nearest", aspect="auto"))
        ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", vmin=0, vmax=9, s=6, edgecolors="none")
        ax.set_xticks([])
        ax.set_yticks([])

    def update(i: int) -> list[object]:
        for ax, image, run in zip(axes, images, runs):
            image.set_data(run.classes[i])
            ax.set_title(f"{run.optimizer}\nval acc {run.accuracies[i]:.2f}", fontsize=9)
        figure.suptitle(f"epoch {runs[0].epochs[i]:.1f} (step {runs[0].steps[i]})", fontsize=10)
        return images

    movie = animation.FuncAnimation(figure, update, frames=len(runs[0].steps), blit=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    movie.save(str(out), writer=writer, dpi=dpi)
    return out


def _writer_for(out: Path, fps: int) -> animation.AbstractMovieWriter:
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot write {out.name!r}: the output must end in {' or '.join(FORMATS)}")
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    if suffix == ".gif":
        return animation.PillowWriter(fps=fps)
    if not animation.writers.is_available("ffmpeg"):
        raise ValueError(f"writing {out.name!r} needs ffmpeg on the PATH; install it or write a .gif")
    return animation.FFMpegWriter(fps=fps)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradretention animate",
                                     description="Animate decision boundaries forming, one panel per optimizer.")
    parser.add_argument("--task", default="spiral", help="a task with 2-D inputs (default: spiral)")
    parser.add_argument("--optimizers", default="sgd,adagrad,momentum,adam_hd", help="up to 4 comma-separated specs")
    parser.add_argument("--out", type=Path, default=Path("spiral.gif"), help=".gif (Pillow) or .mp4 (ffmpeg)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per optimizer (default: the task's)")
    parser.add_argument("--frames", type=int, default=60, help="frames in the animation (default: 60)")
    parser.add_argument("--fps", type=int, default=10, help="frames per second (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="model init and batch order seed (default: 0)")
    parser.add_argument("--resolution", type=int, default=120, help="grid points per axis (default: 120)")
    parser.add_argument("--data-seed", type=int, default=0, help="dataset seed (default: 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    return parser


def animate_main(argv: list[str] | None = None) -> int:
    """Entry point of ``gradretention animate``; returns the exit status (2: bad arguments)."""
    args = _parser().parse_args(argv)
    try:
        for name in ("epochs", "resolution", "threads"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be >= 1, got {value}")
        specs = check_optimizer_specs(split_optimizer_list(args.optimizers))
        _writer_for(args.out, args.fps)  # refuse a bad output before training anything
        task = get_task(args.task)
        data = task.load(args.data_seed, None)
        check_two_dimensional(task, data)
        torch.set_num_threads(args.threads)
        epochs = task.default_epochs if args.epochs is None else args.epochs
        runs = [boundary_frames(task, data, spec, epochs, args.frames, args.seed, args.resolution) for spec in specs]
        write_animation(runs, data, args.out, args.fps)
    except (ValueError, FileNotFoundError) as exc:
        print(f"gradretention animate: {exc}", file=sys.stderr)
        return 2
    summary = ", ".join(f"{run.optimizer} {run.accuracies[-1]:.2f}" for run in runs)
    print(f"wrote {args.out} ({args.frames} frames); final validation accuracy: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(animate_main(sys.argv[1:]))
