"""Row 1 of the window: the controls that act on the running optimizer (Tk widgets only).

The learning-rate slider (log scale, sent on release so a drag is one change), the
"Retain minimum scaling" toggle, the base-lr entry, the y-range multiplier of the bar
views and the watched layer. Entries are parsed by :mod:`gradretention.gui.controls`;
a refused entry shows its reason in the status line and changes nothing.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk
from typing import Protocol

from gradretention.gui.controls import LR_SLIDER_RANGE, lr_from_slider, parse_base_lr, parse_number, slider_from_lr
from gradretention.gui.messages import Command, SelectLayer, SetBaseLr, SetLr, SetRetainMin
from gradretention.gui.presenter import Presenter


class ControlOwner(Protocol):
    """What the control bar needs from the app."""

    presenter: Presenter
    y_multiplier: float

    def send(self, command: Command) -> None: ...
    def show_message(self, text: str) -> None: ...
    def redraw(self, force: bool = False) -> None: ...


class OptimizerControls:
    """Builds the control row under ``root`` (grid row 1) and forwards changes to ``owner``."""

    def __init__(self, root: tk.Tk, owner: ControlOwner) -> None:
        self.owner = owner
        bar = ttk.Frame(root, padding=(6, 2))
        bar.grid(row=1, column=0, sticky="ew")
        self.lr_position = tk.DoubleVar(value=-2.0)
        ttk.Label(bar, text="Learning rate").pack(side="left")
        self.lr_slider = ttk.Scale(bar, from_=LR_SLIDER_RANGE[0], to=LR_SLIDER_RANGE[1], length=180,
                                   variable=self.lr_position, command=lambda _: self._show_lr())
        self.lr_slider.pack(side="left")
        self.lr_slider.bind("<ButtonRelease-1>", lambda _: self.owner.send(SetLr(self.slider_lr())))
        self.lr_label = ttk.Label(bar, width=10, text="lr 0.01")
        self.lr_label.pack(side="left")
        self.retain_min = tk.BooleanVar(value=True)
        ttk.Checkbutton(bar, text="Retain minimum scaling", variable=self.retain_min,
                        command=lambda: owner.send(SetRetainMin(self.retain_min.get()))).pack(side="left", padx=6)
        self.base_lr, self.base_lr_button = _entry_with_button(bar, "Base lr", "1e-5", self._on_base_lr)
        self.y_range, self.y_range_button = _entry_with_button(bar, "Y-range ×", "1", self._on_y_range)
        ttk.Label(bar, text="Layer").pack(side="left", padx=(8, 2))
        self.layer = ttk.Combobox(bar, width=16, state="readonly", values=())
        self.layer.pack(side="left")
        self.layer.bind("<<ComboboxSelected>>", lambda _: owner.send(SelectLayer(self.layer.get())))

    def slider_lr(self) -> float:
        return lr_from_slider(self.lr_position.get())

    def show_lr(self, lr: float) -> None:
        """Move the slider to ``lr`` without sending anything (a new run's starting lr)."""
        self.lr_position.set(slider_from_lr(lr))
        self._show_lr()

    def show_layers(self, layers: tuple[str, ...], watched: str | None) -> None:
        self.layer.configure(values=layers)
        self.layer.set(watched or "")

    def _show_lr(self) -> None:
        self.lr_label.configure(text=f"lr {self.slider_lr():.3g}")

    def _on_base_lr(self) -> None:
        try:
            self.owner.send(SetBaseLr(parse_base_lr(self.base_lr.get(), self.owner.presenter.current_lr)))
        except ValueError as exc:
            self.owner.show_message(f"refused: {exc}")

    def _on_y_range(self) -> None:
        try:
            self.owner.y_multiplier = parse_number(self.y_range.get(), "y-range multiplier", positive=True)
        except ValueError as exc:
            self.owner.show_message(f"refused: {exc}")
            return
        self.owner.redraw(force=True)


def _entry_with_button(parent: ttk.Frame, label: str, initial: str,
                       action: Callable[[], None]) -> tuple[ttk.Entry, ttk.Button]:  # fmt: skip
    ttk.Label(parent, text=label).pack(side="left", padx=(8, 2))
    entry = ttk.Entry(parent, width=8)
    entry.insert(0, initial)
    entry.pack(side="left")
    entry.bind("<Return>", lambda _: action())
    button = ttk.Button(parent, text="Set", width=4, command=action)
    button.pack(side="left")
    return entry, button
