"""A frame that wraps its widget groups onto new lines when the window is narrow (Tk only).

Tk's ``pack`` and ``grid`` keep a row on one line: a row of controls wider than the
screen pushes its last widgets (Pause, the validation panels) off it. :class:`FlowFrame`
places its groups left to right like words in a paragraph and starts a new line when the
next group would pass the frame's right edge. It asks for the width of its widest group
only, so it never makes the window wider than the screen. A group (a label with its
entry and button) stays together on one line.

Example::

    flow = FlowFrame(root)
    flow.grid(row=0, column=0, sticky="ew")
    group = flow.group()
    ttk.Label(group, text="Seeds").pack(side="left")
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk

GAP = 6  # pixels between groups on a line


class FlowFrame(ttk.Frame):
    """Lays out the frames made by :meth:`group` in lines that fit its current width."""

    def __init__(self, master: tk.Misc, **options: object) -> None:
        super().__init__(master, **options)
        self.groups: list[ttk.Frame] = []
        self._placed: list[tuple[tuple[int, int, int], ...]] = []  # per line: (group, width, height)
        self._pending: str | None = None
        self.bind("<Configure>", lambda event: self.reflow(event.width))

    def group(self) -> ttk.Frame:
        """A new group at the end of the flow; pack its widgets side by side inside it."""
        frame = ttk.Frame(self)
        # A group that grows (a label naming a longer optimizer) may no longer fit its line.
        frame.bind("<Configure>", lambda event: self._reflow_soon())
        self.groups.append(frame)
        return frame

    def _reflow_soon(self) -> None:
        if self._pending is None:
            self._pending = self.after_idle(self._reflow_pending)

    def _reflow_pending(self) -> None:
        self._pending = None
        self.reflow()

    def lines_for(self, width: int) -> list[list[ttk.Frame]]:
        """The groups split greedily into lines no wider than ``width`` (a too-wide group gets its own line)."""
        lines: list[list[ttk.Frame]] = [[]]
        used = 0
        for frame in self.groups:
            need = frame.winfo_reqwidth() + (GAP if lines[-1] else 0)
            if lines[-1] and used + need > width:
                lines.append([])
                used, need = 0, frame.winfo_reqwidth()
            lines[-1].append(frame)
            used += need
        return lines

    def reflow(self, width: int | None = None) -> None:
        """Place the groups for ``width`` (default: the frame's width) and ask for the height they need."""
        self.update_idletasks()  # the groups' requested sizes must be known
        width = width or self.winfo_width()
        lines = self.lines_for(max(width, 1))
        placed = [tuple((self.groups.index(frame), frame.winfo_reqwidth(), frame.winfo_reqheight()) for frame in line)
                  for line in lines]
        if placed == self._placed:
            return  # same layout: re-placing would only trigger another <Configure>
        self._placed = placed
        y = 0
        for line in lines:
            x = 0
            height = max((frame.winfo_reqheight() for frame in line), default=0)
            for frame in line:
                frame.place(x=x, y=y + (height - frame.winfo_reqheight()) // 2)
                x += frame.winfo_reqwidth() + GAP
            y += height + 2
        widest = max((frame.winfo_reqwidth() for frame in self.groups), default=1)
        self.configure(width=widest, height=max(y, 1))


def fit_to_screen(root: tk.Tk, flow: FlowFrame, margin: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """Size ``root`` to its content, or to the screen less ``margin`` when the content is larger.

    ``flow`` wraps to the width chosen, and widgets with grid weight (the figures, whose
    canvases resize them) shrink with the window, so every control stays on the screen.
    Returns the window's (width, height).
    """
    root.update_idletasks()
    width = min(root.winfo_reqwidth(), root.winfo_screenwidth() - margin[0])
    padx = str(flow.grid_info().get("padx", 0)).split()  # Tk gives "6" or "6 8"
    flow.reflow(width - sum(int(pad) for pad in padx) * (2 if len(padx) == 1 else 1))
    root.update_idletasks()
    height = min(root.winfo_reqheight(), root.winfo_screenheight() - margin[1])
    root.geometry(f"{width}x{height}")
    root.minsize(min(width, 640), min(height, 400))
    return width, height
