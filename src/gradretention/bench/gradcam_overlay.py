"""Grad-CAM overlay pictures: the image with its true label, the heat map with the prediction.

Rendering only (numpy and matplotlib, no model): :mod:`gradretention.bench.gradcam`
computes the maps and labels and calls these. Figures are
:class:`matplotlib.figure.Figure` objects, never pyplot, so no global backend is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure


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


def blend(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``(1 − alpha)·image + alpha·jet(heat)``: uint8 RGB ``(H, W, 3)`` from an image and a map in [0, 1]."""
    from matplotlib import colormaps

    coloured = colormaps["jet"](heat)[..., :3]
    return (((1 - alpha) * image / 255.0 + alpha * coloured) * 255).round().astype(np.uint8)


def overlay_figure(image: np.ndarray, heat: np.ndarray, true_text: str, predicted_text: str,
                   correct: bool | None = None) -> Figure:  # fmt: skip
    """The image titled with its true label, beside the blended heat map titled with the prediction.

    The colour bar maps the heat map's colours to Grad-CAM values in [0, 1] (relative to
    the image's own peak). ``correct`` colours the prediction's title green or red.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    figure = Figure(figsize=(6.4, 3.4), dpi=100, layout="constrained")
    left, right = figure.subplots(1, 2)
    left.imshow(image, interpolation="nearest")
    left.set_title(true_text, fontsize=10)
    right.imshow(blend(image, heat), interpolation="nearest")
    colour = {True: "#1a7f37", False: "#b00020", None: "black"}[correct]
    right.set_title(predicted_text, fontsize=10, color=colour)
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    bar = figure.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap="jet"), ax=right, fraction=0.05, pad=0.03)
    bar.set_label("Grad-CAM (1 = this image's peak)", fontsize=8)
    return figure


def overlay_texts(explained: int, truth: int | None, probability: float | None, segmentation: bool,
                  names: Sequence[str] | None = None) -> tuple[str, str]:  # fmt: skip
    """The two titles: ``("true: 3", "predicted: 3 (p = 0.97)\nGrad-CAM of class 3")`` and the like."""
    def name(index: int) -> str:
        return names[index] if names and 0 <= index < len(names) else str(index)

    if segmentation:
        true_text = "true: —" if truth is None else f"true: {name(truth)} (commonest in mask)"
        return true_text, f"predicted: {name(explained)} (commonest)\nGrad-CAM of class {name(explained)}"
    chance = "" if probability is None else f" (p = {probability:.2f})"
    true_text = "true: —" if truth is None else f"true: {name(truth)}"
    return true_text, f"predicted: {name(explained)}{chance}\nGrad-CAM of class {name(explained)}"
