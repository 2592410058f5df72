"""The Tk window: widgets, the event-queue pump and ``gui_main`` — no training logic here.

Training runs in :class:`~gradretention.gui.worker.TrainingWorker`'s thread; its events
arrive through a ``queue.Queue`` that :meth:`GuiApp._poll` drains every
:data:`POLL_MS` with Tk's ``after``, so the window never blocks on training. The
presenter turns events into state, :class:`~gradretention.gui.views.Views` draws it,
and redraws are throttled so a fast run cannot starve the event loop.

Example (a window that trains for 10 s, saves itself and closes)::

    gradretention gui --run-for 10 --screenshot window.png
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
import tkinter as tk
from pathlib import Path
from tkinter import filedialog, ttk

import torch
from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg

from gradretention.gui.control_bar import OptimizerControls
from gradretention.gui.dialogs import SessionForm, show_results
from gradretention.gui.flow import FlowFrame, fit_to_screen
from gradretention.gui.messages import Command, GuiEvent, SessionFinished, SessionStarted
from gradretention.gui.options import build_parser, session_from
from gradretention.gui.presenter import Presenter
from gradretention.gui.views import Views
from gradretention.gui.screenshot import save_screenshot
from gradretention.gui.worker import GuiSession, TrainingWorker

POLL_MS = 50  # how often the Tk loop drains the event queue
MAX_EVENTS_PER_POLL = 5000  # bound one drain so the window answers clicks even under a flood
MIN_REDRAW_SECONDS = 0.4
# Pixels kept free of the window on each axis: a title bar and a desktop panel take ~60 px of a 768 px screen.
SCREEN_MARGIN = (0, 72)


class GuiApp:
    """The main window; ``session`` fills the form's initial values."""

    def __init__(self, root: tk.Tk, session: GuiSession) -> None:
        self.root = root
        self.presenter = Presenter()
        self.views = Views()
        self.events: queue.Queue[GuiEvent] = queue.Queue()
        self.worker: TrainingWorker | None = None
        self.y_multiplier = 1.0
        self.closing = False
        self._last_draw, self._draw_seconds, self._synced_run = 0.0, 0.0, None
        root.title("GradRetentionNet — live optimizer view")
        style = ttk.Style(root)
        if "clam" in style.theme_names():
            style.theme_use("clam")  # X11's default theme looks dated; clam ships with Tk
        # clam's own bar colour is barely darker than its trough: a finished bar looked empty.
        style.configure("Horizontal.TProgressbar", background="#4a7fb5", troughcolor="#e8e8e8")
        self.toolbar = FlowFrame(root)
        self.toolbar.grid(row=0, column=0, sticky="ew", padx=6, pady=(4, 2))
        self.form = SessionForm(self.toolbar, session, self)
        self.controls = OptimizerControls(self.toolbar, self)
        self._build_canvases()
        self._build_status()
        fit_to_screen(root, self.toolbar, SCREEN_MARGIN)
        self.sync_controls()
        self.redraw(force=True)
        root.after(POLL_MS, self._poll)

    def _build_canvases(self) -> None:
        frame = ttk.Frame(self.root)
        frame.grid(row=1, column=0, sticky="nsew")
        self.root.rowconfigure(1, weight=1)
        self.root.columnconfigure(0, weight=1)
        self.canvases = {}
        for column, (name, figure) in enumerate(self.views.figures.items()):
            canvas = FigureCanvasTkAgg(figure, master=frame)
            canvas.get_tk_widget().grid(row=0, column=column, sticky="nsew")
            frame.columnconfigure(column, weight=1)
            self.canvases[name] = canvas
        frame.rowconfigure(0, weight=1)

    def _build_status(self) -> None:
        bar = ttk.Frame(self.root, padding=(6, 2))
        bar.grid(row=2, column=0, sticky="ew")
        self.progress = ttk.Progressbar(bar, length=200, maximum=1.0, mode="determinate")
        self.progress.grid(row=0, column=0, sticky="w")
        # Labels ask for little width: a long status line is cut at the window's edge, never widens it.
        self.status = ttk.Label(bar, text=self.presenter.status, anchor="w", width=1)
        self.status.grid(row=0, column=1, sticky="ew", padx=8)
        self.notice = ttk.Label(bar, text="", anchor="w", width=1)
        self.notice.grid(row=0, column=2, sticky="ew", padx=8)
        bar.columnconfigure(1, weight=3)
        bar.columnconfigure(2, weight=2)

    # Session buttons (called by the form).
    def start(self, session: GuiSession) -> None:
        if self.worker is not None and self.worker.is_alive():
            self.show_message("refused: a session is running; Stop it first")
            return
        self.events = queue.Queue()
        self.worker = TrainingWorker(session, self.events)
        self.worker.start()
        self.presenter.starting(f"{', '.join(session.optimizers)} on {session.task}")
        self._refresh_labels()

    def toggle_pause(self) -> bool:
        """Pause or resume; returns True when now paused."""
        if self.worker is None or not self.worker.is_alive():
            self.show_message("nothing to pause: press Start first")
            return False
        paused = self.worker.signals.resume.is_set()
        self.worker.pause() if paused else self.worker.resume()
        self.presenter.set_paused(paused)
        self._refresh_labels()
        return paused

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    def skip(self) -> None:
        if self.worker is not None and self.worker.is_alive():
            self.worker.skip()

    def save_graphs(self, directory: Path | None = None) -> list[Path]:
        """One PNG per view into ``directory`` (asked for when ``None``)."""
        if directory is None:
            chosen = filedialog.askdirectory(parent=self.root, title="Save graphs into")
            if not chosen:
                return []
            directory = Path(chosen)
        self.redraw(force=True)
        paths = self.views.save(directory)
        self.show_message(f"saved {len(paths)} graphs to {directory}")
        return paths

    def send(self, command: Command) -> None:
        """Queue ``command`` for the running optimizer, or say there is none."""
        if self.worker is None or not self.worker.is_alive():
            self.show_message("no run in progress: press Start first")
            return
        self.worker.send(command)

    def show_message(self, text: str) -> None:
        """Show ``text`` beside the status line until the next message (refusals in red)."""
        self.presenter.notice = text
        self._show_notice()

    def _show_notice(self) -> None:
        text = self.presenter.notice
        self.notice.configure(text=text, foreground="#b00020" if text.startswith("refused") else "#1f4e79")

    # The pump.
    def _poll(self) -> None:
        if self.closing:
            return
        self.drain()
        self.root.after(POLL_MS, self._poll)

    def drain(self, limit: int | None = MAX_EVENTS_PER_POLL) -> None:
        """Hand up to ``limit`` queued events (``None``: all) to the presenter; refresh the widgets."""
        handled = 0
        while limit is None or handled < limit:
            handled += 1
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            self.presenter.handle(event)
            if isinstance(event, SessionStarted):
                self.controls.show_layers(event.layers, self.worker.layer if self.worker is not None else None)
            elif isinstance(event, SessionFinished):
                self.redraw(force=True)
                if self.presenter.results and not self.closing:
                    show_results(self.root, self.presenter.result_rows())
        self._sync_lr_slider()
        self._refresh_labels()
        self.redraw()

    def _refresh_labels(self) -> None:
        self.progress.configure(value=self.presenter.progress())
        self.status.configure(text=self.presenter.status)
        self._show_notice()
        self.sync_controls()

    def sync_controls(self) -> None:
        """Grey out the buttons and controls that cannot act in the presenter's current state."""
        state = self.presenter.control_state()
        self.form.apply(state)
        self.controls.apply(state)

    def _sync_lr_slider(self) -> None:
        """Show a new run's starting lr on the slider (once per run, so a drag is not undone)."""
        current = self.presenter.current
        if current is None or current is self._synced_run or self.presenter.current_lr is None:
            return
        self._synced_run = current
        self.controls.show_lr(self.presenter.current_lr)

    def redraw(self, force: bool = False) -> None:
        """Repaint the views if something changed, at most every few hundred ms unless forced."""
        now = time.monotonic()
        wait = max(MIN_REDRAW_SECONDS, 2 * self._draw_seconds)
        if not force and (not self.presenter.dirty or now - self._last_draw < wait):
            return
        self.views.draw(self.presenter, self.y_multiplier)
        for canvas in self.canvases.values():
            canvas.draw()
        self.presenter.dirty = False
        self._last_draw, self._draw_seconds = time.monotonic(), time.monotonic() - now


def gui_main(argv: list[str] | None = None) -> int:
    """Entry point of ``gradretention gui``.

    Returns:
        The exit status: 0, 2 for bad flags, 1 without a display or when the session failed.
    """
    args = build_parser().parse_args(argv)
    try:
        session = session_from(args)
    except ValueError as exc:
        print(f"gradretention gui: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    try:
        root = tk.Tk()
    except tk.TclError as exc:
        print(f"gradretention gui: cannot open a window ({exc}); set DISPLAY or run under xvfb-run",
              file=sys.stderr)
        return 1
    app = GuiApp(root, session)
    root.protocol("WM_DELETE_WINDOW", lambda: _close(app, args))
    if args.run_for is not None:
        root.after(0, lambda: app.start(session))
        root.after(int(args.run_for * 1000), lambda: _close(app, args))
    root.mainloop()
    return 1 if app.presenter.session_status == "error" else 0


def _close(app: GuiApp, args: argparse.Namespace) -> None:
    """Stop training, catch up with its last events, write the requested outputs and close."""
    app.closing = True  # no more polling, no results window popping over the screenshot
    if app.worker is not None:
        app.worker.stop()
        app.worker.join(timeout=10.0)
    app.drain(limit=None)
    app.redraw(force=True)
    state = app.presenter.to_dict()
    if args.screenshot is not None:
        state["screenshot_method"] = _screenshot(app, args.screenshot)
    if args.save_graphs is not None:
        app.save_graphs(args.save_graphs)
    if args.dump_state is not None:
        args.dump_state.parent.mkdir(parents=True, exist_ok=True)
        args.dump_state.write_text(json.dumps(state, indent=1))
    app.root.destroy()


def _screenshot(app: GuiApp, path: Path) -> str:
    root = app.root
    for child in root.winfo_children():
        if isinstance(child, tk.Toplevel):
            child.withdraw()  # without a window manager a results window would sit on top of the grab
    root.lift()
    root.update()
    x, y = root.winfo_rootx(), root.winfo_rooty()
    bbox = (x, y, x + root.winfo_width(), y + root.winfo_height())
    return save_screenshot(path, bbox, list(app.views.figures.values()), app.presenter.status)


if __name__ == "__main__":
    sys.exit(gui_main(sys.argv[1:]))
