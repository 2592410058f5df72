"""A real Tk window on a private Xvfb display: screenshot, plotted data, refused entries."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradretention.gui.app import gui_main

needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")
TIMEOUT = 240.0  # seconds; a shared CI machine may be slow to import torch and Tk


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """A fresh Xvfb server; ``-displayfd`` lets it pick a free display number itself."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
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
    assert state["optimizers"] == ["rescaled_sgd", "sgd"]
    series = state["series"]
    assert len(series["rescaled_sgd:loss"]["x"]) >= 1
    assert len(series["rescaled_sgd:train_accuracy"]["mean"]) >= 1
    assert len(series["rescaled_sgd:lr"]["mean"]) >= 1
    assert len(state["bars"]["update"]["rescaled_sgd"]) == 64
    assert len(state["bars"]["effective_lr"]["rescaled_sgd"]) == 64


def pump(root: object, until: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not until():
        assert time.monotonic() < deadline, "the window did not get there in time"
        root.update()  # runs the after() pump that drains the worker's events
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
        app.form.buttons["Start"].invoke()
        app.worker.pause()  # hold the run so the refusals below land while it is live
        for entry, button, text, message in (
            (app.controls.base_lr, app.controls.base_lr_button, "abc", "refused: base lr must be a number, got 'abc'"),
            (app.controls.y_range, app.controls.y_range_button, "-2",
             "refused: y-range multiplier must be > 0, got '-2'"),
            (app.form.seeds, app.form.buttons["Start"], "two", "refused: seeds must be a whole number, got 'two'"),
        ):
            entry.delete(0, "end")
            entry.insert(0, text)
            button.invoke()
            assert app.notice.cget("text") == message
        # Above the peak: refused by the window once it knows the peak, else by the worker a moment later.
        app.controls.base_lr.delete(0, "end")
        app.controls.base_lr.insert(0, "5")
        app.controls.base_lr_button.invoke()
        pump(root, lambda: app.notice.cget("text").startswith("refused: base lr 5 is above the peak lr 0.01; "))
        app.worker.resume()
        pump(root, lambda: app.presenter.session_status is not None)
        assert app.presenter.session_status == "done"
        assert [run.status for run in app.presenter.results["rescaled_sgd"]] == ["done"]
        assert app.progress.cget("value") == pytest.approx(1.0)
    finally:
        root.destroy()


def test_bad_flags_exit_2_before_any_window(capsys: pytest.CaptureFixture[str]) -> None:
    assert gui_main(["--optimizers", "sgd,sgdd"]) == 2
    assert "Unknown optimizer 'sgdd'. Did you mean 'sgd'" in capsys.readouterr().err
    assert gui_main(["--run-for", "0"]) == 2
    assert "--run-for must be > 0 seconds, got 0.0" in capsys.readouterr().err
