"""A real Tk window on a private Xvfb display: screenshot, plotted data, refused entries, fit to small screens."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradretention.gui.app import gui_main
from gradretention.gui.demo import default_optimizers

needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")
TIMEOUT = 240.0  # seconds; a shared CI machine may be slow to import torch and Tk


@contextmanager
def xvfb(size: str) -> Iterator[str]:
    """A fresh Xvfb server of ``size`` (``"1366x768"``); ``-displayfd`` lets it pick a free display number."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 30.0)
        number = os.read(read_end, 32).decode().strip() if ready else ""
        if not number:
            pytest.fail("Xvfb did not report a display number within 30 s")
        yield f":{number}"
    finally:
        os.close(read_end)
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    with xvfb("1600x1000") as name:
        yield name


@needs_xvfb
def test_window_runs_for_five_seconds_and_saves_a_screenshot_of_live_data(display: str, tmp_path: Path) -> None:
    shot, state_path = tmp_path / "window.png", tmp_path / "state.json"
    command = [sys.executable, "-m", "gradretention.gui.app", "--run-for", "5", "--screenshot", str(shot),
               "--dump-state", str(state_path), "--epochs", "3", "--seeds", "2"]  # gui_main(argv) in a subprocess
    done = subprocess.run(command, env={**os.environ, "DISPLAY": display}, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    with Image.open(shot) as image:
        assert image.format == "PNG"
        assert image.width >= 1000 and image.height >= 500  # the whole window, three views wide
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.var() > 100.0  # not blank: plots, text and widgets
    state = json.loads(state_path.read_text())
    assert state["screenshot_method"] == "window"  # grabbed from the X server, not re-rendered
    rescaled, sgd = default_optimizers()
    assert state["optimizers"] == [rescaled, sgd]
    series = state["series"]
    assert len(series[f"{rescaled}:loss"]["x"]) >= 1
    assert len(series[f"{rescaled}:train_accuracy"]["mean"]) >= 1
    assert len(series[f"{rescaled}:lr"]["mean"]) >= 1
    assert len(state["bars"]["update"][rescaled]) == 64
    assert len(state["bars"]["effective_lr"][rescaled]) == 64


def pump(app: object, until: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not until():
        assert time.monotonic() < deadline, f"the window did not get there in time: {app.presenter.status}"
        app.root.update()  # runs the after() pump that drains the worker's events
        time.sleep(0.01)


@needs_xvfb
def test_invalid_entries_are_refused_in_the_window_and_the_run_goes_on(
    display: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tkinter as tk

    from gradretention.gui.app import GuiApp
    from gradretention.gui.worker import GuiSession

    monkeypatch.setenv("DISPLAY", display)
    root = tk.Tk()
    try:
        app = GuiApp(root, GuiSession(optimizers=("rescaled_sgd",), seeds=1, epochs=20))
        app.form.seeds.delete(0, "end")
        app.form.seeds.insert(0, "two")
        app.form.buttons["Start"].invoke()
        assert app.notice.cget("text") == "refused: seeds must be a whole number, got 'two'"
        assert app.worker is None
        app.form.seeds.delete(0, "end")
        app.form.seeds.insert(0, "1")
        app.form.buttons["Start"].invoke()
        app.worker.pause()  # hold the run so the refusals below land while it is live
        pump(app, lambda: app.presenter.current is not None)  # the run's controls come alive
        for entry, button, text, message in (
            (app.controls.base_lr, app.controls.base_lr_button, "abc", "refused: base lr must be a number, got 'abc'"),
            (app.controls.y_range, app.controls.y_range_button, "-2",
             "refused: y-range multiplier must be > 0, got '-2'"),
        ):
            entry.delete(0, "end")
            entry.insert(0, text)
            button.invoke()
            assert app.notice.cget("text") == message
        # Above the peak: refused by the window once it knows the peak, else by the worker a moment later.
        app.controls.base_lr.delete(0, "end")
        app.controls.base_lr.insert(0, "5")
        app.controls.base_lr_button.invoke()
        pump(app, lambda: app.notice.cget("text").startswith("refused: base lr 5 is above the peak lr 0.01; "))
        app.worker.resume()
        pump(app, lambda: app.presenter.session_status is not None)
        assert app.presenter.session_status == "done"
        assert app.status.cget("text") == "session done" and app.notice.cget("text") == ""  # not "starting…"
        assert [run.status for run in app.presenter.results["rescaled_sgd"]] == ["done"]
        assert app.progress.cget("value") == pytest.approx(1.0)
    finally:
        root.destroy()


def widgets_of(widget: object) -> Iterator[object]:
    for child in widget.winfo_children():
        yield child
        yield from widgets_of(child)


# Runs in a child process: Tk keeps its X connection after destroy(), and Xlib ends the whole
# process when that display's server goes away, so each screen size gets a process of its own.
GEOMETRY_PROBE = """
import json, tkinter as tk
from gradretention.gui.app import GuiApp
from gradretention.gui.worker import GuiSession
root = tk.Tk()
app = GuiApp(root, GuiSession())
root.update()

def walk(widget):
    for child in widget.winfo_children():
        yield child
        yield from walk(child)

def box(widget):
    return [str(widget), widget.winfo_class(), widget.winfo_ismapped(), widget.winfo_rootx(), widget.winfo_rooty(),
            widget.winfo_width(), widget.winfo_height()]

controls = app.controls
named = {**{f"button {name}": button for name, button in app.form.buttons.items()},
         "optimizers": app.form.optimizers, "lr slider": controls.lr_slider, "retain": controls.retain_button,
         "base lr": controls.base_lr_button, "y-range": controls.y_range_button, "layer": controls.layer,
         "status": app.status, "progress": app.progress,
         **{f"view {name}": canvas.get_tk_widget() for name, canvas in app.canvases.items()}}
layout = {"window": box(root), "widgets": [box(w) for w in walk(root)],
          "named": {name: box(w) for name, w in named.items()}}
# The lr label names the running optimizer: a long spec must re-wrap the toolbar, not squeeze it.
controls.lr_target.configure(text="peak lr of rescaled_sgd[lr=0.0316,decay=0.9]")
root.update()
layout["groups"] = [box(g) + [g.winfo_reqwidth()] for g in app.toolbar.groups]
layout["widgets_after"] = [box(w) for w in walk(root)]
print(json.dumps(layout))
root.destroy()
"""


@needs_xvfb
@pytest.mark.parametrize("size", ["1366x768", "1024x600"])
def test_every_control_and_view_is_on_a_small_screen(size: str) -> None:
    width, height = map(int, size.split("x"))
    with xvfb(size) as name:
        done = subprocess.run([sys.executable, "-c", GEOMETRY_PROBE], env={**os.environ, "DISPLAY": name},
                              capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    layout = json.loads(done.stdout)
    assert layout["window"][5] <= width and layout["window"][6] <= height
    for path, kind, mapped, x, y, w, h in layout["widgets"] + layout["widgets_after"]:
        if mapped:
            where = f"{kind} {path} at {x},{y} size {w}x{h} on a {size} screen"
            assert x >= 0 and y >= 0 and x + w <= width and y + h <= height, where
    groups = layout["groups"]
    for path, _, mapped, x, y, w, h, wanted in groups:
        assert mapped and w == wanted, f"toolbar group {path} squeezed to {w} of {wanted} px"
    for i, (_, _, _, x, y, w, h, _) in enumerate(groups):
        for other, _, _, x2, y2, w2, h2, _ in groups[i + 1 :]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, f"toolbar groups overlap: {other}"
    for control, (_, _, mapped, _, _, w, h) in layout["named"].items():
        assert mapped, f"{control} is not shown"
        if control.startswith("view"):  # the validation panels included: each view keeps a usable size
            assert w >= 250 and h >= 250, f"{control} is only {w}x{h}"


@needs_xvfb
def test_controls_follow_the_session_and_the_running_optimizer(display: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import tkinter as tk

    from gradretention.gui.app import GuiApp
    from gradretention.gui.worker import GuiSession

    monkeypatch.setenv("DISPLAY", display)
    root = tk.Tk()
    try:
        # Long sessions, paused at once and then stopped: a short one could end before the checks.
        app = GuiApp(root, GuiSession(seeds=1, epochs=500))
        retention = (app.controls.retain_button, app.controls.base_lr, app.controls.base_lr_button)
        # The demo's tuned specs follow the task (no table for digits-mlp: the registry defaults).
        assert app.form.optimizers.get() == "rescaled_sgd[lr=0.0316],sgd[lr=1]"
        app.form.task.set("digits-mlp")
        app.form.task.event_generate("<<ComboboxSelected>>")
        root.update()
        assert app.form.optimizers.get() == "rescaled_sgd,sgd"
        app.form.task.set("spiral")
        app.form.task.event_generate("<<ComboboxSelected>>")
        root.update()
        assert app.form.optimizers.get() == "rescaled_sgd[lr=0.0316],sgd[lr=1]"
        assert app.form.buttons["Pause"].instate(["disabled"]) and app.controls.lr_slider.instate(["disabled"])
        for spec, label, live in (("sgd[lr=1]", "lr of sgd[lr=1]", False),
                                  ("rescaled_sgd", "peak lr of rescaled_sgd", True)):
            app.form.optimizers.delete(0, "end")
            app.form.optimizers.insert(0, spec)
            app.form.buttons["Start"].invoke()
            assert app.status.cget("text") == f"starting {spec} on spiral…"
            app.form.buttons["Pause"].invoke()
            pump(app, lambda: app.presenter.current is not None)
            assert app.controls.lr_target.cget("text") == label
            assert all(widget.instate(["!disabled"] if live else ["disabled"]) for widget in retention)
            assert app.form.buttons["Start"].instate(["disabled"]) and app.form.buttons["Pause"].cget("text") == "Resume"
            app.form.buttons["Stop"].invoke()
            pump(app, lambda: app.presenter.session_status is not None)
            assert app.status.cget("text") == "session stopped" and app.notice.cget("text") == ""
            assert app.form.buttons["Start"].instate(["!disabled"]) and app.form.buttons["Pause"].instate(["disabled"])
            assert app.form.buttons["Pause"].cget("text") == "Pause"
            assert all(widget.instate(["disabled"]) for widget in retention)
    finally:
        root.destroy()


def test_bad_flags_exit_2_before_any_window(capsys: pytest.CaptureFixture[str]) -> None:
    assert gui_main(["--optimizers", "sgd,sgdd"]) == 2
    assert "Unknown optimizer 'sgdd'. Did you mean 'sgd'" in capsys.readouterr().err
    assert gui_main(["--run-for", "0"]) == 2
    assert "--run-for must be > 0 seconds, got 0.0" in capsys.readouterr().err
