"""Save the window as a PNG: a grab of its screen region, or its figures composited.

On X11 (Xvfb included) Pillow's ``ImageGrab`` reads the window's pixels from the display
server. Where that is not possible (no X, Pillow without XCB) or the grab comes back
blank (a window not yet painted), the figures are rendered with Agg and laid side by
side under the status line, so a screenshot is never silently empty.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageGrab


def is_blank(image: Image.Image) -> bool:
    """True when every pixel has the same colour (nothing was drawn)."""
    return float(np.asarray(image.convert("L"), dtype=np.float64).var()) == 0.0


def grab_region(bbox: tuple[int, int, int, int]) -> Image.Image | None:
    """The screen pixels in ``bbox`` (left, top, right, bottom), or ``None`` if they cannot be read."""
    display = os.environ.get("DISPLAY")
    try:
        image = ImageGrab.grab(bbox=bbox, xdisplay=display) if display else ImageGrab.grab(bbox=bbox)
    except (OSError, ValueError):  # no X server, no XCB support, or a platform without grabbing
        return None
    return None if is_blank(image) else image.convert("RGB")


def compose_figures(figures: Sequence[Figure], caption: str = "") -> Image.Image:
    """The figures rendered with Agg side by side, ``caption`` written above them."""
    panels = []
    for figure in figures:
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        panels.append(Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB"))
    banner = 24 if caption else 0
    width = sum(panel.width for panel in panels)
    height = max((panel.height for panel in panels), default=1) + banner
    sheet = Image.new("RGB", (max(width, 1), height), "white")
    left = 0
    for panel in panels:
        sheet.paste(panel, (left, banner))
        left += panel.width
    if caption:
        ImageDraw.Draw(sheet).text((6, 6), caption, fill="black")
    return sheet


def save_screenshot(path: Path, bbox: tuple[int, int, int, int], figures: Sequence[Figure],
                    caption: str = "") -> str:  # fmt: skip
    """Write the window's PNG to ``path``; returns how: ``"window"`` (a grab) or ``"figures"``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = grab_region(bbox)
    method = "window"
    if image is None:
        image, method = compose_figures(figures, caption), "figures"
    image.save(path, format="PNG")
    return method
