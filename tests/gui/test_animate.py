"""The decision-boundary animation: frame schedule, grid predictions, the GIF's frames."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from gradretention.gui.animate import (
    animate_main, boundary_frames, check_two_dimensional, frame_steps, input_grid,
)
from gradretention.tasks.base import TaskData
from gradretention.tasks.registry import get_task
from gradretention.tasks.splits import make_split


def test_frame_steps_span_training_evenly_from_step_zero() -> None:
    assert frame_steps(6, 4) == [0, 2, 4, 6]
    assert frame_steps(300, 2) == [0, 300]
    with pytest.raises(ValueError, match=r"frames \(8\) exceeds the training steps \+ 1 \(7\)"):
        frame_steps(6, 8)
    with pytest.raises(ValueError, match=r"frames must be >= 2, got 1"):
        frame_steps(6, 1)


def test_grid_covers_the_points_with_a_margin() -> None:
    grid, extent = input_grid(torch.tensor([[0.0, -1.0], [2.0, 1.0]]), resolution=3)
    assert extent == pytest.approx((-0.1, 2.1, -1.1, 1.1))
    assert grid.shape == (9, 2)
    assert grid[0].tolist() == pytest.approx([-0.1, -1.1]) and grid[2].tolist() == pytest.approx([2.1, -1.1])


def grid_classes(model: torch.nn.Module, data: TaskData, resolution: int) -> np.ndarray:
    grid, _ = input_grid(data.train.inputs, resolution)
    with torch.no_grad():
        return model(grid).argmax(dim=1).reshape(resolution, resolution).numpy()


def test_first_frame_is_the_untrained_model_for_every_optimizer() -> None:
    task = get_task("spiral")
    data = task.load(0, None)
    runs = [boundary_frames(task, data, spec, epochs=1, frames=3, seed=4, resolution=10) for spec in ("sgd", "adam")]
    torch.manual_seed(4)
    untrained = task.build_model(data.num_classes)
    for run in runs:
        assert run.steps == (0, 3, 6) and run.epochs == (0.0, 0.5, 1.0)
        assert run.classes.shape == (3, 10, 10)
        np.testing.assert_array_equal(run.classes[0], grid_classes(untrained, data, 10))
        assert run.accuracies[0] == pytest.approx(task.evaluate(untrained, data.val)["accuracy"])


def test_last_frame_is_the_model_after_every_step_trained_by_torch_sgd() -> None:
    task = get_task("spiral")
    data = task.load(0, None)
    run = boundary_frames(task, data, "sgd[lr=0.5]", epochs=2, frames=2, seed=1, resolution=12)
    # The oracle: torch.optim.SGD over the same seeded batch order, written out by hand.
    torch.manual_seed(1)
    model = task.build_model(data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    generator = torch.Generator().manual_seed(1)
    for _ in range(2):
        order = torch.randperm(len(data.train), generator=generator)
        for start in range(0, len(data.train), 32):
            optimizer.zero_grad()
            task.batch_loss(model, *data.train.batch(order[start : start + 32])).backward()
            optimizer.step()
    assert run.steps == (0, 12)
    np.testing.assert_array_equal(run.classes[-1], grid_classes(model, data, 12))
    assert run.accuracies[-1] == pytest.approx(task.evaluate(model, data.val)["accuracy"])
    assert not np.array_equal(run.classes[0], run.classes[-1])  # the boundary moved


def test_gif_has_one_frame_per_requested_frame(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "spiral.gif"
    argv = ["--task", "spiral", "--optimizers", "sgd,adam", "--out", str(out), "--epochs", "1", "--frames", "4",
            "--fps", "5", "--resolution", "16"]
    assert animate_main(argv) == 0
    with Image.open(out) as gif:
        assert gif.format == "GIF"
        assert sum(1 for _ in ImageSequence.Iterator(gif)) == 4
        assert gif.info["duration"] == 200  # 5 fps
        assert gif.size[0] > gif.size[1]  # two panels side by side
    assert "final validation accuracy: sgd" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "x.avi"], r"the output must end in .gif or .mp4"),
        (["--optimizers", "sgd,nope"], r"Unknown optimizer 'nope'"),
        (["--task", "spirall"], r"Unknown task 'spirall'\. Did you mean 'spiral'"),
        (["--frames", "500", "--epochs", "1"], r"frames \(500\) exceeds the training steps \+ 1 \(7\)"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(extra: list[str], message: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    argv = ["--out", str(tmp_path / "a.gif"), "--resolution", "8", *extra]
    assert animate_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("gradretention animate: ")
    assert re.search(message, err), err
    assert not (tmp_path / "a.gif").exists()


@pytest.mark.skipif(shutil.which("ffmpeg") is not None, reason="ffmpeg is installed: .mp4 works")
def test_mp4_without_ffmpeg_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert animate_main(["--out", str(tmp_path / "a.mp4")]) == 2
    assert "needs ffmpeg on the PATH; install it or write a .gif" in capsys.readouterr().err


def test_inputs_that_are_not_points_in_the_plane_are_refused() -> None:
    split = make_split(np.zeros((4, 64)), np.zeros(4))
    data = TaskData(split, split, split, num_classes=2)
    with pytest.raises(ValueError, match=r"task 'spiral' has inputs of shape \(4, 64\); the animation needs 2-D"):
        check_two_dimensional(get_task("spiral"), data)
