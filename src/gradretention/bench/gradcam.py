"""Grad-CAM overlays for the convolutional tasks and the U-Net, through captum's ``LayerGradCam``.

``gradretention gradcam OUT --task T --run R`` loads the checkpoint of run ``R`` (a file,
or a run id under ``--results``), rebuilds the task's model, and writes one PNG per test
image into ``OUT``: the image on the left with its true and predicted label, the Grad-CAM
heat map blended over it on the right (red = evidence for the explained class) with a
colour bar. The tasks it applies to are read off the task registry
(:func:`gradcam_tasks`): those whose model runs a spatial ``Conv2d`` on images.

The layer explained is the last spatial convolution the model runs (the last ``Conv2d``
whose kernel is larger than 1x1, in execution order): the second conv of ``MnistCNN``,
the last 3x3 conv of the CIFAR models, the last 3x3 conv of the U-Net's full-resolution
decoder block (its 1x1 head only maps each pixel's features to classes). Classifiers explain their predicted class. For
segmentation the explained score is, as in the usual segmentation Grad-CAM, the sum of
one class's logits over the pixels predicted as that class; the class is the most
frequent non-background class in the prediction (background if there is none).

References:
    Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", ICCV 2017.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gradretention.bench.gradcam_overlay import displayable, overlay_figure, overlay_texts

EXIT_OK, EXIT_USAGE = 0, 2


def gradcam_layer(model: nn.Module, images: torch.Tensor) -> nn.Conv2d:
    """The last ``Conv2d`` with a kernel larger than 1x1 that runs when ``model`` sees ``images``.

    Execution order, not registration order: a U-Net registers its decoder blocks
    coarsest-last but runs the full-resolution one last.

    Raises:
        ValueError: the model runs no such convolution (e.g. an MLP).
    """
    executed: list[nn.Conv2d] = []
    hooks = [
        module.register_forward_hook(lambda module, args, output: executed.append(module))
        for module in model.modules()
        if isinstance(module, nn.Conv2d) and tuple(module.kernel_size) != (1, 1)
    ]
    try:
        with torch.no_grad():
            model(images[:1])
    finally:
        for hook in hooks:
            hook.remove()
    if not executed:
        raise ValueError(f"{type(model).__name__} has no spatial convolution; Grad-CAM applies to the tasks "
                         f"{', '.join(gradcam_tasks())}")
    return executed[-1]


def has_spatial_conv(model: nn.Module) -> bool:
    """Whether ``model`` holds a ``Conv2d`` with a kernel larger than 1x1 (what Grad-CAM explains)."""
    return any(isinstance(m, nn.Conv2d) and tuple(m.kernel_size) != (1, 1) for m in model.modules())


@functools.cache
def gradcam_tasks() -> tuple[str, ...]:
    """The registered tasks Grad-CAM applies to: their model holds a spatial ``Conv2d``.

    Each model is built on the meta device (no memory, no weights); a model that cannot
    be built there (a pretrained text encoder read from disk) is no CNN either. Costs a
    second or two (it imports every task's model code), so it runs only for ``--help``
    and for errors.
    """
    from gradretention.tasks.registry import TASKS

    supported = []
    for name, task in sorted(TASKS.items()):
        try:
            with torch.device("meta"):
                model = task.build_model(10)
        except Exception:  # noqa: BLE001 - any model that cannot be built on meta is not an image CNN
            continue
        if has_spatial_conv(model):
            supported.append(name)
    return tuple(supported)


class _PixelClassScores(nn.Module):
    """Per-class sums of a segmentation model's logits over the pixels predicted as that class."""

    def __init__(self, model: nn.Module, predicted: torch.Tensor, num_classes: int) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mask", nn.functional.one_hot(predicted, num_classes).permute(0, 3, 1, 2).float())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (self.model(images) * self.mask).sum(dim=(2, 3))


def gradcam_maps(
    model: nn.Module, images: torch.Tensor, segmentation: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM heat maps ``(N, H, W)`` in [0, 1] at input resolution, and the explained classes ``(N,)``.

    Args:
        model: a classifier (logits ``(N, C)``) or, with ``segmentation``, a segmenter
            (logits ``(N, C, H, W)``); put in eval mode here.
        images: ``(N, C, H, W)`` model inputs.
        segmentation: explain a segmentation model (see the module docstring).
    """
    from captum.attr import LayerAttribution, LayerGradCam

    model.eval()
    with torch.no_grad():
        logits = model(images)
    if segmentation:
        predicted = logits.argmax(dim=1)
        classes = torch.stack([_dominant_class(p, logits.shape[1]) for p in predicted])
        forward: nn.Module = _PixelClassScores(model, predicted, logits.shape[1])
    else:
        classes, forward = logits.argmax(dim=1), model
    with torch.enable_grad():
        attributions = LayerGradCam(forward, gradcam_layer(model, images)).attribute(
            images, target=classes.tolist(), relu_attributions=True
        )
    heat = LayerAttribution.interpolate(attributions.detach(), tuple(images.shape[2:]), "bilinear")[:, 0]
    peak = heat.flatten(1).amax(dim=1).clamp_min(1e-12)
    return (heat.clamp_min(0) / peak[:, None, None]).clamp(0, 1), classes


def _dominant_class(predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    counts = torch.bincount(predicted.flatten(), minlength=num_classes)
    if int(counts[1:].sum()) == 0:
        return torch.tensor(0)
    return counts[1:].argmax() + 1


def dominant_label(mask: torch.Tensor, num_classes: int) -> int:
    """The most frequent non-background class of a segmentation mask (0 if none; 255 = void is skipped)."""
    valid = mask[(mask >= 0) & (mask < num_classes)]
    return int(_dominant_class(valid, num_classes))


def write_overlays(out: Path, task_name: str, model: nn.Module, images: torch.Tensor, targets: torch.Tensor | None,
                   normalization: dict[str, Any] | None, segmentation: bool, label: str,
                   names: Sequence[str] | None = None) -> list[Path]:  # fmt: skip
    """Write one labelled overlay PNG per image to ``out``; returns the paths in image order."""
    heat, classes = gradcam_maps(model, images, segmentation)
    with torch.no_grad():
        logits = model(images)
    pictures = displayable(images, normalization)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (picture, cam, explained) in enumerate(zip(pictures, heat.cpu().numpy(), classes.tolist())):
        if segmentation:
            truth = None if targets is None else dominant_label(targets[index], logits.shape[1])
            probability = None
        else:
            truth = None if targets is None else int(targets[index])
            probability = float(torch.softmax(logits[index], dim=0)[explained])
        texts = overlay_texts(explained, truth, probability, segmentation, names)
        figure = overlay_figure(picture, cam, *texts, correct=None if truth is None else truth == explained)
        path = out / f"{task_name}-{label}-{index:03d}-class{explained}.png"
        figure.savefig(path, format="png")
        paths.append(path)
    return paths


DESCRIPTION = ("Write Grad-CAM overlays of a finished run's test images: the image with its true label beside "
               "the heat map with the predicted label and a colour bar.")


class _UnbrokenNames(argparse.HelpFormatter):
    """Wraps help at spaces only, so a task name such as ``digits-cnn`` is never split at its hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _HelpListingTasks(argparse.Action):
    """``-h/--help`` that first fills in the tasks Grad-CAM applies to (built only when asked for)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, *,
                 task: argparse.Action, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show this help and exit")
        self.task = task

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        self.task.help = f"a task whose model runs a spatial convolution: {', '.join(gradcam_tasks())}"
        parser.print_help()
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """``gradretention gradcam OUT --task T --run R``."""
    parser = argparse.ArgumentParser(prog="gradretention gradcam", description=DESCRIPTION, add_help=False,
                                     formatter_class=_UnbrokenNames)
    parser.add_argument("out", type=Path, help="folder for the overlay PNGs")
    task = parser.add_argument("--task", required=True, help="a task whose model runs a spatial convolution")
    parser.add_argument("-h", "--help", action=functools.partial(_HelpListingTasks, task=task))
    parser.add_argument("--run", required=True, help="a checkpoint file, or a run id under --results")
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="the sweep's output folder (its --out), holding checkpoints/RUN_ID.pt (default: results)")
    parser.add_argument("--data-dir", type=Path, help="folder with the task's data")
    parser.add_argument("--count", type=int, default=8, help="test images to explain (default: 8)")
    return parser


def resolve_checkpoint(run: str, results: Path) -> Path:
    """The checkpoint file ``run`` names: a path to a file, or a run id under ``results``.

    Raises:
        FileNotFoundError: saying where it looked, how to point elsewhere, and which run
            ids do have a checkpoint there.
    """
    from gradretention.bench.checkpoint import CHECKPOINT_DIR, checkpoint_path

    given = Path(run)
    if given.is_file():
        return given
    if given.suffix == ".pt" or any(separator in run for separator in "/\\"):
        raise FileNotFoundError(f"checkpoint file {given} not found; --run takes a checkpoint file or a run id")
    path = checkpoint_path(results, run)
    if path.is_file():
        return path
    folder = Path(results) / CHECKPOINT_DIR
    ids = sorted(found.stem for found in folder.glob("*.pt")) if folder.is_dir() else []
    if ids:
        there = f"run ids with a checkpoint there: {', '.join(ids[:12])}{' …' if len(ids) > 12 else ''}"
    else:
        there = (f"{folder} {'holds no checkpoints' if folder.is_dir() else 'does not exist'} "
                 "(a run saves one when trained with --checkpoint-every N)")
    here = checkpoint_path(".", run)
    hint = f"{here} exists: add --results ." if here.is_file() and here.resolve() != path.resolve() else (
        "point --results at the sweep's output folder, or pass the checkpoint file as --run FILE.pt")
    raise FileNotFoundError(f"no checkpoint for run {run!r}: looked for {path} (--results {results}); {there}; {hint}")


def gradcam_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gradretention gradcam``; returns the exit code (0 ok, 2 bad input)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        paths = run_gradcam(args.out, args.task, args.run, args.results, args.data_dir, args.count)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"gradretention gradcam: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {len(paths)} Grad-CAM overlays to {args.out}")
    return EXIT_OK


def run_gradcam(out: Path, task_name: str, run: str, results: Path, data_dir: Path | None, count: int) -> list[Path]:
    """Load run ``run``'s checkpoint for ``task_name`` and write ``count`` test overlays to ``out``.

    Raises:
        ValueError: a bad count, a task without convolutions, or a checkpoint of another task.
        FileNotFoundError: no such checkpoint, or the task's data is missing.
    """
    from gradretention.bench.checkpoint import load_checkpoint, read_checkpoint_extra
    from gradretention.tasks.registry import get_task

    if count < 1:
        raise ValueError(f"--count must be >= 1, got {count}")
    try:
        task = get_task(task_name)
    except ValueError:
        close = difflib.get_close_matches(task_name, gradcam_tasks(), n=2, cutoff=0.6)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"Unknown task {task_name!r}.{hint} Grad-CAM applies to the tasks "
                         f"{', '.join(gradcam_tasks())}") from None
    path = resolve_checkpoint(run, results)
    saved = read_checkpoint_extra(path)
    if saved.extra.get("task", task_name) != task_name:
        raise ValueError(f"{path} is a checkpoint of task {saved.extra['task']!r}, not {task_name!r}")
    data = task.load(int(saved.extra.get("data_seed", 0)), data_dir)
    images, targets = data.test.inputs[:count], data.test.targets
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"task {task_name!r} has no image inputs; Grad-CAM applies to the tasks "
                         f"{', '.join(gradcam_tasks())}")
    model = task.build_model(data.num_classes).eval()
    gradcam_layer(model, images)  # refuse models without convolutions before writing anything
    load_checkpoint(path, model, None, restore_rng=False)
    segmentation = task.metric_fn is not None and "miou" in task.metrics
    targets = targets[:count] if isinstance(targets, torch.Tensor) else None
    return write_overlays(out, task_name, model, images, targets, data.info.get("normalization"), segmentation,
                          path.stem, data.info.get("class_names"))
