"""The controls that act on the running optimizer (Tk widgets only), in the window's toolbar.

The learning-rate slider (log scale, sent on release so a drag is one change), labelled
with the optimizer it changes (the one running: each optimizer keeps its own lr), the
"Retain minimum scaling" toggle and the base-lr entry (greyed out unless the running
optimizer has them: RescaledSGD), the y-range multiplier of the bar views and the
watched layer. Entries are parsed by :mod:`gradretention.gui.controls`; a refused entry
shows its reason in the status line and changes nothing. Which controls are live comes
from :meth:`Presenter.control_state <gradretention.gui.presenter.Presenter.control_state>`.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk
from typing import Protocol

from gradretention.gui.controls import LR_SLIDER_RANGE, lr_from_slider, parse_base_lr, parse_number, slider_from_lr
from gradretention.gui.flow import FlowFrame
from gradretention.gui.messages import Command, SelectLayer, SetBaseLr, SetLr, SetRetainMin
from gradretention.gui.presenter import ControlState, Presenter


class ControlOwner(Protocol):
    """What the control bar needs from the app."""

    presenter: Presenter
    y_multiplier: float

    def send(self, command: Command) -> None: ...
    def show_message(self, text: str) -> None: ...
    def redraw(self, force: bool = False) -> None: ...


class OptimizerControls:
    """Adds the control groups to ``flow`` and forwards changes to ``owner``."""

    def __init__(self, flow: FlowFrame, owner: ControlOwner) -> None:
        self.owner = owner
        bar = flow.group()
        self.lr_position = tk.DoubleVar(value=-2.0)
        self.lr_target = ttk.Label(bar, text="lr (no run)")
        self.lr_target.pack(side="left")
        self.lr_slider = ttk.Scale(bar, from_=LR_SLIDER_RANGE[0], to=LR_SLIDER_RANGE[1], length=150,
                                   variable=self.lr_position, command=lambda _: self._show_lr())
        self.lr_slider.pack(side="left", padx=2)
        self.lr_slider.bind("<ButtonRelease-1>", lambda _: self._on_slider())
        self.lr_label = ttk.Label(bar, width=6, text="0.01")
        self.lr_label.pack(side="left")
        self.retain_min = tk.BooleanVar(value=True)
        self.retain_button = ttk.Checkbutton(flow.group(), text="Retain minimum scaling", variable=self.retain_min,
                                             command=lambda: owner.send(SetRetainMin(self.retain_min.get())))
        self.retain_button.pack(side="left")
        self.base_lr, self.base_lr_button = _entry_with_button(flow.group(), "Base lr", "1e-5", self._on_base_lr)
        self.y_range, self.y_range_button = _entry_with_button(flow.group(), "Y-range ×", "1", self._on_y_range)
        layer_group = flow.group()
        ttk.Label(layer_group, text="Layer").pack(side="left", padx=(0, 2))
        self.layer = ttk.Combobox(layer_group, width=16, state="readonly", values=())
        self.layer.pack(side="left")
        self.layer.bind("<<ComboboxSelected>>", lambda _: owner.send(SelectLayer(self.layer.get())))

    def apply(self, state: ControlState) -> None:
        """Grey out what cannot act now and name the optimizer the lr slider changes."""
        self.lr_target.configure(text=state.lr_label)
        _enable(self.lr_slider, state.lr_enabled)
        for widget in (self.retain_button, self.base_lr, self.base_lr_button):
            _enable(widget, state.retention)

    def _on_slider(self) -> None:
        if self.lr_slider.instate(["!disabled"]):  # a disabled ttk.Scale still reports the release
            self.owner.send(SetLr(self.slider_lr()))

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
        self.lr_label.configure(text=f"{self.slider_lr():.3g}")

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


def _enable(widget: ttk.Widget, enabled: bool) -> None:
    widget.state(["!disabled"] if enabled else ["disabled"])


def _entry_with_button(parent: ttk.Frame, label: str, initial: str,
                       action: Callable[[], None]) -> tuple[ttk.Entry, ttk.Button]:  # fmt: skip
    ttk.Label(parent, text=label).pack(side="left", padx=(0, 2))
    entry = ttk.Entry(parent, width=8)
    entry.insert(0, initial)
    entry.pack(side="left")
    entry.bind("<Return>", lambda _: action())
    button = ttk.Button(parent, text="Set", width=4, command=action)
    button.pack(side="left")
    return entry, button
