"""Grad-CAM overlays for the convolutional tasks and the U-Net, through captum's ``LayerGradCam``.

``gradretention gradcam OUT --task T --run R`` loads the checkpoint of run ``R`` (a file,
or a run id under ``--results``), rebuilds the task's model, and writes one PNG per test
image into ``OUT``: the image on the left, the Grad-CAM heat map blended over it on the
right (red = evidence for the explained class).

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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

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
        raise ValueError(f"{type(model).__name__} has no spatial convolution; Grad-CAM needs a CNN or the U-Net")
    return executed[-1]


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


def displayable(images: torch.Tensor, normalization: dict[str, Any] | None) -> np.ndarray:
    """Standardised images ``(N, C, H, W)`` back to ``uint8 (N, H, W, 3)`` RGB."""
    images = images.detach().cpu().float()
    if normalization:
        shape = (1, -1, 1, 1)
        std, mean = torch.tensor(normalization["std"]).view(shape), torch.tensor(normalization["mean"]).view(shape)
        images = images * std + mean
    else:  # no statistics recorded: stretch each image to [0, 1]
        low, high = images.amin(dim=(1, 2, 3), keepdim=True), images.amax(dim=(1, 2, 3), keepdim=True)
        images = (images - low) / (high - low).clamp_min(1e-12)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def overlay_image(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, min_side: int = 128) -> Any:
    """A ``PIL.Image``: ``image`` beside ``image`` blended with the ``jet`` colouring of ``heat``.

    Small images are enlarged (nearest neighbour) so their shorter side is at least ``min_side``.
    """
    from matplotlib import colormaps
    from PIL import Image

    coloured = colormaps["jet"](heat)[..., :3]
    blended = (1 - alpha) * image / 255.0 + alpha * coloured
    pair = np.concatenate([image, (blended * 255).round().astype(np.uint8)], axis=1)
    picture = Image.fromarray(pair, mode="RGB")
    scale = max(1, -(-min_side // min(image.shape[:2])))
    return picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)


def write_overlays(out: Path, task_name: str, model: nn.Module, images: torch.Tensor,
                   normalization: dict[str, Any] | None, segmentation: bool, label: str) -> list[Path]:  # fmt: skip
    """Write one overlay PNG per image to ``out``; returns the paths in image order."""
    heat, classes = gradcam_maps(model, images, segmentation)
    pictures = displayable(images, normalization)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (picture, cam, explained) in enumerate(zip(pictures, heat.cpu().numpy(), classes.tolist())):
        path = out / f"{task_name}-{label}-{index:03d}-class{explained}.png"
        overlay_image(picture, cam).save(path, format="PNG")
        paths.append(path)
    return paths


def build_parser() -> argparse.ArgumentParser:
    """``gradretention gradcam OUT --task T --run R``."""
    parser = argparse.ArgumentParser(prog="gradretention gradcam", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the overlay PNGs")
    parser.add_argument("--task", required=True, help="a CNN task (mnist-cnn, cifar10-*) or voc-unet")
    parser.add_argument("--run", required=True, help="a checkpoint file, or a run id under --results")
    parser.add_argument("--results", type=Path, default=Path("results"), help="the sweep's output folder")
    parser.add_argument("--data-dir", type=Path, help="folder with the task's data")
    parser.add_argument("--count", type=int, default=8, help="test images to explain (default 8)")
    return parser


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
    from gradretention.bench.checkpoint import checkpoint_path, load_checkpoint, read_checkpoint_extra
    from gradretention.tasks.registry import get_task

    if count < 1:
        raise ValueError(f"--count must be >= 1, got {count}")
    task = get_task(task_name)
    path = Path(run) if Path(run).is_file() else checkpoint_path(results, run)
    saved = read_checkpoint_extra(path)
    if saved.extra.get("task", task_name) != task_name:
        raise ValueError(f"{path} is a checkpoint of task {saved.extra['task']!r}, not {task_name!r}")
    data = task.load(int(saved.extra.get("data_seed", 0)), data_dir)
    images = data.test.inputs[:count]
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"task {task_name!r} has no image inputs; Grad-CAM applies to image tasks")
    model = task.build_model(data.num_classes).eval()
    gradcam_layer(model, images)  # refuse models without convolutions before writing anything
    load_checkpoint(path, model, None, restore_rng=False)
    segmentation = task.metric_fn is not None and "miou" in task.metrics
    return write_overlays(out, task_name, model, images, data.info.get("normalization"), segmentation, path.stem)
