"""Grad-CAM: captum's maps equal a hand-written Grad-CAM; the command writes overlay PNGs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gradretention.bench.checkpoint import checkpoint_path, save_checkpoint
from gradretention.bench.gradcam import gradcam_layer, gradcam_main, gradcam_maps
from gradretention.tasks.models.cifar import ResNet18
from gradretention.tasks.models.mnist import MnistCNN
from gradretention.tasks.models.unet import UNet
from gradretention.tasks.registry import get_task

pytest.importorskip("captum")


def test_the_explained_layer_is_the_last_spatial_convolution_to_run():
    cnn = MnistCNN()
    assert gradcam_layer(cnn, torch.zeros(1, 1, 28, 28)) is cnn.features[2]
    resnet = ResNet18()
    assert gradcam_layer(resnet, torch.zeros(1, 3, 32, 32)) is resnet.blocks[-1].conv2
    unet = UNet(21, base_width=4, levels=2)
    # up[1] is registered last but runs first; up[0] works at full resolution, before the 1x1 head.
    assert gradcam_layer(unet, torch.zeros(1, 3, 16, 16)) is unet.up[0][3]
    with pytest.raises(ValueError, match="MnistMLP has no spatial convolution"):
        gradcam_layer(get_task("mnist-mlp").build_model(10), torch.zeros(1, 1, 28, 28))


def _hand_gradcam(model: nn.Module, layer: nn.Module, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Selvaraju et al.: ReLU(sum_k mean_ij(dy_c/dA_k) * A_k), by hooks and autograd."""
    kept = {}
    handle = layer.register_forward_hook(lambda module, args, output: kept.update(activation=output))
    logits = model(images)
    handle.remove()
    score = logits.gather(1, classes[:, None]).sum()
    (gradient,) = torch.autograd.grad(score, kept["activation"])
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * kept["activation"]).sum(dim=1, keepdim=True)).detach()


def test_classifier_maps_equal_a_hand_written_gradcam():
    torch.manual_seed(0)
    model = MnistCNN().eval()
    images = torch.randn(3, 1, 28, 28)
    heat, classes = gradcam_maps(model, images)
    assert torch.equal(classes, model(images).argmax(dim=1))
    raw = _hand_gradcam(model, model.features[2], images, classes)
    expected = nn.functional.interpolate(raw, size=(28, 28), mode="bilinear", align_corners=False)[:, 0]
    expected = expected / expected.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    assert heat.shape == (3, 28, 28) and float(heat.max()) <= 1.0 and float(heat.min()) >= 0.0
    torch.testing.assert_close(heat, expected, atol=1e-5, rtol=1e-4)


def test_segmentation_maps_explain_the_dominant_predicted_class():
    torch.manual_seed(1)
    model = UNet(5, base_width=4, levels=2).eval()
    images = torch.randn(2, 3, 16, 16)
    heat, classes = gradcam_maps(model, images, segmentation=True)
    predicted = model(images).argmax(dim=1)
    for row, explained in enumerate(classes.tolist()):
        counts = torch.bincount(predicted[row].flatten(), minlength=5)
        assert explained == (0 if counts[1:].sum() == 0 else int(counts[1:].argmax()) + 1)
    assert heat.shape == (2, 16, 16) and bool(torch.isfinite(heat).all())


def _checkpoint(task_name: str, data_dir, folder) -> str:
    task = get_task(task_name)
    data = task.load(0, data_dir)
    torch.manual_seed(0)
    model = task.build_model(data.num_classes)
    path = checkpoint_path(folder, "abc123")
    save_checkpoint(path, model, None, epoch=1, extra={"task": task_name, "data_seed": 0})
    return path


@pytest.mark.parametrize(("task_name", "side"), [("mnist-cnn", 28), ("voc-unet", 64)])
def test_gradcam_command_writes_overlay_pngs(task_name, side, data_dir, tmp_path, capsys):
    _checkpoint(task_name, data_dir, tmp_path / "results")
    out = tmp_path / "cams"
    argv = [str(out), "--task", task_name, "--run", "abc123", "--results", str(tmp_path / "results"),
            "--data-dir", str(data_dir), "--count", "2"]  # fmt: skip
    assert gradcam_main(argv) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 2 and f"wrote 2 Grad-CAM overlays to {out}" in capsys.readouterr().out
    picture = np.asarray(Image.open(pngs[0]))
    scale = -(-128 // side)
    assert picture.shape == (side * scale, 2 * side * scale, 3)
    left, right = picture[:, : side * scale], picture[:, side * scale :]
    assert not np.array_equal(left, right)  # the right half carries the heat map


def test_gradcam_refuses_models_without_convolutions_and_other_tasks_checkpoints(data_dir, tmp_path, capsys):
    path = _checkpoint("mnist-cnn", data_dir, tmp_path)
    argv = [str(tmp_path / "out"), "--run", str(path), "--data-dir", str(data_dir)]
    assert gradcam_main([*argv, "--task", "mnist-logreg"]) == 2
    assert "is a checkpoint of task 'mnist-cnn', not 'mnist-logreg'" in capsys.readouterr().err
    assert gradcam_main([*argv, "--task", "mnist-cnn", "--count", "0"]) == 2
    assert "--count must be >= 1, got 0" in capsys.readouterr().err
    missing = [str(tmp_path / "out"), "--task", "mnist-cnn", "--run", "missing", "--results", str(tmp_path)]
    assert gradcam_main(missing) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    mlp = _checkpoint("mnist-mlp", data_dir, tmp_path / "mlp")
    mlp_argv = [str(tmp_path / "out"), "--task", "mnist-mlp", "--run", str(mlp), "--data-dir", str(data_dir)]
    assert gradcam_main(mlp_argv) == 2
    assert "MnistMLP has no spatial convolution" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
