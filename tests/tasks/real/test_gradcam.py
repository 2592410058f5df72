"""Grad-CAM: captum's maps equal a hand-written Grad-CAM; the command writes labelled overlay PNGs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gradretention.bench.checkpoint import checkpoint_path, save_checkpoint
from gradretention.bench.gradcam import gradcam_layer, gradcam_main, gradcam_maps, gradcam_tasks
from gradretention.bench.gradcam_overlay import blend, overlay_figure, overlay_texts
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
    with Image.open(pngs[0]) as image:
        assert image.format == "PNG" and image.size == (640, 340)  # the 6.4 x 3.4 in figure at 100 dpi
        picture = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert not np.array_equal(picture[:, :320], picture[:, 320:])  # the right half carries the heat map


def test_gradcam_refuses_models_without_convolutions_and_other_tasks_checkpoints(data_dir, tmp_path, capsys):
    path = _checkpoint("mnist-cnn", data_dir, tmp_path)
    argv = [str(tmp_path / "out"), "--run", str(path), "--data-dir", str(data_dir)]
    assert gradcam_main([*argv, "--task", "mnist-logreg"]) == 2
    assert "is a checkpoint of task 'mnist-cnn', not 'mnist-logreg'" in capsys.readouterr().err
    assert gradcam_main([*argv, "--task", "mnist-cnn", "--count", "0"]) == 2
    assert "--count must be >= 1, got 0" in capsys.readouterr().err
    missing = [str(tmp_path / "out"), "--task", "mnist-cnn", "--run", "missing", "--results", str(tmp_path)]
    assert gradcam_main(missing) == 2
    err = capsys.readouterr().err
    assert f"no checkpoint for run 'missing': looked for {tmp_path / 'checkpoints' / 'missing.pt'} " in err
    assert "run ids with a checkpoint there: abc123;" in err  # the one _checkpoint saved
    assert "point --results at the sweep's output folder, or pass the checkpoint file as --run FILE.pt" in err
    assert gradcam_main([*missing[:-1], str(tmp_path / "elsewhere")]) == 2
    assert f"{tmp_path / 'elsewhere' / 'checkpoints'} does not exist" in capsys.readouterr().err
    assert gradcam_main([*argv, "--task", "mnist-cn"]) == 2
    assert f"Unknown task 'mnist-cn'. Did you mean 'mnist-cnn'" in capsys.readouterr().err
    mlp = _checkpoint("mnist-mlp", data_dir, tmp_path / "mlp")
    mlp_argv = [str(tmp_path / "out"), "--task", "mnist-mlp", "--run", str(mlp), "--data-dir", str(data_dir)]
    assert gradcam_main(mlp_argv) == 2
    assert f"MnistMLP has no spatial convolution; Grad-CAM applies to the tasks {', '.join(gradcam_tasks())}" in (
        capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_supported_tasks_come_from_the_registry_and_the_help_lists_them(capsys):
    tasks = gradcam_tasks()
    assert {"digits-cnn", "mnist-cnn", "cifar10-cnn", "cifar10-resnet18", "cifar10-vgg16", "voc-unet"} <= set(tasks)
    assert not {"digits-mlp", "mnist-logreg", "mnist1d-cnn", "imdb-lstm", "imdb-bert", "spiral"} & set(tasks)
    assert gradcam_main(["--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps the list
    assert f"a task whose model runs a spatial convolution: {', '.join(tasks)}" in help_text


def test_overlay_titles_carry_the_true_and_predicted_label_and_a_colour_bar():
    assert overlay_texts(3, 3, 0.973, False) == ("true: 3", "predicted: 3 (p = 0.97)\nGrad-CAM of class 3")
    assert overlay_texts(1, 0, 0.6, False, ["cat", "dog"]) == ("true: cat", "predicted: dog (p = 0.60)\nGrad-CAM of class dog")
    assert overlay_texts(15, 7, None, True)[0] == "true: 7 (commonest in mask)"
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    heat = np.linspace(0, 1, 64).reshape(8, 8)
    figure = overlay_figure(image, heat, "true: 3", "predicted: 5 (p = 0.60)\nGrad-CAM of class 5", correct=False)
    left, right, bar = figure.axes
    assert left.get_title() == "true: 3" and right.get_title().startswith("predicted: 5")
    assert right.title.get_color() == "#b00020"  # a wrong prediction is red
    assert bar.get_ylabel() == "Grad-CAM (1 = this image's peak)" and bar.get_ylim() == (0.0, 1.0)
    # The blend is (1 - 0.5) * image + 0.5 * jet(heat): on a black image, half the jet colour.
    from matplotlib import colormaps

    expected = (0.5 * colormaps["jet"](heat)[..., :3] * 255).round()
    assert np.array_equal(blend(image, heat), expected.astype(np.uint8))


def test_digits_cnn_overlays_name_the_models_prediction(tmp_path, capsys):
    task = get_task("digits-cnn")
    data = task.load(0, None)
    torch.manual_seed(0)
    model = task.build_model(data.num_classes)
    save_checkpoint(checkpoint_path(tmp_path, "digits1"), model, None, epoch=1, extra={"task": "digits-cnn", "data_seed": 0})
    assert gradcam_main([str(tmp_path / "cams"), "--task", "digits-cnn", "--run", "digits1",
                         "--results", str(tmp_path), "--count", "3"]) == 0
    predicted = model.eval()(data.test.inputs[:3]).argmax(dim=1).tolist()
    names = sorted(path.name for path in (tmp_path / "cams").glob("*.png"))
    assert names == [f"digits-cnn-digits1-{i:03d}-class{c}.png" for i, c in enumerate(predicted)]
