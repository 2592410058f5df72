"""Tk widgets around the views: the session form and its buttons, the help and results windows.

Widgets only: the form parses its entries with :mod:`gradretention.gui.controls` and
hands a :class:`~gradretention.gui.worker.GuiSession` to the app; a bad entry is
refused in the status line and nothing else happens.
"""

from __future__ import annotations

import math
import tkinter as tk
from tkinter import ttk
from tkinter.scrolledtext import ScrolledText
from typing import Protocol

from gradretention.gui.controls import parse_int, split_optimizer_list
from gradretention.gui.demo import about_text, default_optimizers
from gradretention.gui.flow import FlowFrame
from gradretention.gui.presenter import ControlState, ResultRow
from gradretention.gui.worker import GuiSession
from gradretention.tasks.registry import available_tasks


class SessionOwner(Protocol):
    """What the form needs from the app."""

    def start(self, session: GuiSession) -> None: ...
    def toggle_pause(self) -> bool: ...
    def stop(self) -> None: ...
    def skip(self) -> None: ...
    def save_graphs(self) -> object: ...
    def show_message(self, text: str) -> None: ...


class SessionForm:
    """The toolbar's first groups: task, optimizers, seeds, epochs and the session buttons."""

    def __init__(self, flow: FlowFrame, session: GuiSession, owner: SessionOwner) -> None:
        self.owner, self.session = owner, session
        group = flow.group()
        ttk.Label(group, text="Task").pack(side="left")
        self.task = ttk.Combobox(group, width=12, state="readonly", values=available_tasks())
        self.task.set(session.task)
        self.task.pack(side="left", padx=(2, 0))
        self.task.bind("<<ComboboxSelected>>", lambda _: self._on_task())
        self._task_shown = session.task
        self.optimizers = self._entry(flow.group(), "Optimizers (≤ 4)", ",".join(session.optimizers), 30)
        self.seeds = self._entry(flow.group(), "Seeds", str(session.seeds), 3)
        self.epochs = self._entry(flow.group(), "Epochs", "" if session.epochs is None else str(session.epochs), 4)
        self.pause_text = tk.StringVar(value="Pause")
        self.buttons: dict[str, ttk.Button] = {}
        group = flow.group()
        for text, command in (("Start", self.submit), ("Pause", self._pause), ("Stop", owner.stop),
                              ("Skip to next optimizer", owner.skip), ("Save graphs", owner.save_graphs),
                              ("Help", lambda: show_help(group.winfo_toplevel()))):
            self.buttons[text] = ttk.Button(group, text=text, command=command)
            self.buttons[text].pack(side="left", padx=1)
        self.buttons["Pause"].configure(textvariable=self.pause_text)

    @staticmethod
    def _entry(group: ttk.Frame, label: str, initial: str, width: int) -> ttk.Entry:
        ttk.Label(group, text=label).pack(side="left")
        entry = ttk.Entry(group, width=width)
        entry.insert(0, initial)
        entry.pack(side="left", padx=(2, 0))
        return entry

    def apply(self, state: ControlState) -> None:
        """Start only between sessions; Pause, Stop and Skip only during one."""
        self.buttons["Start"].state(["!disabled"] if state.start_enabled else ["disabled"])
        for name in ("Pause", "Stop", "Skip to next optimizer"):
            self.buttons[name].state(["!disabled"] if state.session_buttons else ["disabled"])
        self.pause_text.set("Resume" if state.paused else "Pause")

    def _on_task(self) -> None:
        """A new task: the demo's tuned specs follow it, unless the user typed specs of their own."""
        if self.optimizers.get() == ",".join(default_optimizers(self._task_shown)):
            self.optimizers.delete(0, "end")
            self.optimizers.insert(0, ",".join(default_optimizers(self.task.get())))
        self._task_shown = self.task.get()

    def read(self) -> GuiSession:
        """The session the form describes.

        Raises:
            ValueError: the first bad entry, named, with what is allowed.
        """
        epochs_text = self.epochs.get().strip()
        epochs = None if not epochs_text else parse_int(epochs_text, "epochs")
        return GuiSession(task=self.task.get(), optimizers=split_optimizer_list(self.optimizers.get()),
                          seeds=parse_int(self.seeds.get(), "seeds"), epochs=epochs,
                          batch_size=self.session.batch_size, log_every=self.session.log_every,
                          data_seed=self.session.data_seed, max_bars=self.session.max_bars,
                          data_dir=self.session.data_dir)  # fmt: skip

    def submit(self) -> None:
        """Start the session the entries describe, or show why not."""
        try:
            session = self.read()
        except ValueError as exc:
            self.owner.show_message(f"refused: {exc}")
            return
        self.pause_text.set("Pause")
        self.owner.start(session)

    def _pause(self) -> None:
        self.pause_text.set("Resume" if self.owner.toggle_pause() else "Pause")


def show_help(root: tk.Misc) -> tk.Toplevel:
    """A window with :func:`~gradretention.gui.demo.about_text`: the demo and its fair learning rates."""
    window = tk.Toplevel(root)
    window.title("GradRetentionNet GUI — help")
    text = ScrolledText(window, wrap="word", width=76, height=22, padx=8, pady=8, relief="flat")
    text.insert("1.0", about_text())
    text.configure(state="disabled")
    text.pack(fill="both", expand=True)
    ttk.Button(window, text="Close", command=window.destroy).pack(pady=(0, 6))
    return window


def format_mean_std(value: tuple[float, float, int]) -> str:
    """``"0.8512 ± 0.0123 (n=3)"``; ``"—"`` when no run finished."""
    mean, std, n = value
    return "—" if n == 0 or math.isnan(mean) else f"{mean:.4f} ± {std:.4f} (n={n})"


def show_results(root: tk.Tk, rows: list[ResultRow]) -> tk.Toplevel:
    """A window with the test loss and accuracy (mean ± std over seeds) per optimizer."""
    window = tk.Toplevel(root)
    window.title("Results — test split, mean ± std over seeds")
    columns = ("optimizer", "runs", "test loss", "test accuracy", "statuses")
    table = ttk.Treeview(window, columns=columns, show="headings", height=max(len(rows), 1))
    for column, width in zip(columns, (220, 50, 190, 190, 160)):
        table.heading(column, text=column)
        table.column(column, width=width, anchor="w")
    for row in rows:
        statuses = ", ".join(f"{status} {count}" for status, count in sorted(row.statuses.items()))
        table.insert("", "end", values=(row.optimizer, row.runs, format_mean_std(row.test_loss),
                                        format_mean_std(row.test_accuracy), statuses))
    table.pack(fill="both", expand=True, padx=6, pady=6)
    ttk.Button(window, text="Close", command=window.destroy).pack(pady=(0, 6))
    return window
