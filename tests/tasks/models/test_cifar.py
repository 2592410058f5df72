import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gradretention.tasks.models.cifar import CifarCNN, ResNet18, VGG16, augment_flip_crop


def _parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet18_maps_a_cifar_batch_to_logits_with_the_reference_size():
    model = ResNet18(num_classes=10)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    # The CIFAR ResNet-18 of kuangliu/pytorch-cifar has 11,173,962 parameters.
    assert _parameter_count(model) == 11_173_962


def test_vgg16_maps_a_cifar_batch_to_logits_and_its_options_change_the_layout():
    model = VGG16(num_classes=10)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    # 13 convs (14,714,688) + BN scale/shift over 4,224 channels + 512-512-10 classifier.
    assert _parameter_count(model) == 14_714_688 + 2 * 4_224 + 2 * (512 * 512 + 512) + 5_130
    plain = VGG16(num_classes=100, batch_norm=False, classifier_hidden=0)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert _parameter_count(plain) == 14_714_688 + 512 * 100 + 100


def test_cifar_cnn_gives_logits_and_a_few_adam_steps_lower_its_loss(loss_before_after):
    model = CifarCNN(num_classes=10)
    images = torch.rand(4, 3, 32, 32)
    assert model(images).shape == (4, 10)
    before, after = loss_before_after(model, images, torch.arange(4), steps=3)
    assert after < before


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_classes": 0}, "num_classes must be >= 1, got 0"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
    ({"classifier_hidden": -1}, "classifier_hidden must be >= 0, got -1"),
])
def test_vgg16_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VGG16(**kwargs)


def _asymmetric_images(n: int, size: int = 6) -> torch.Tensor:
    # Distinct positive values everywhere, so every flip/offset gives a different picture
    # and no crop can be confused with the zero padding.
    return torch.arange(1, n * 3 * size * size + 1, dtype=torch.float32).reshape(n, 3, size, size)


def test_augmentation_keeps_shape_and_dtype_and_repeats_for_a_seed():
    images = torch.rand(16, 3, 32, 32)
    first = augment_flip_crop(images, torch.Generator().manual_seed(7))
    again = augment_flip_crop(images, torch.Generator().manual_seed(7))
    other = augment_flip_crop(images, torch.Generator().manual_seed(8))
    assert first.shape == images.shape and first.dtype == images.dtype
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_without_padding_each_image_is_itself_or_its_torch_flip_and_both_occur():
    images = _asymmetric_images(1).expand(32, -1, -1, -1)
    out = augment_flip_crop(images, torch.Generator().manual_seed(0), padding=0)
    flipped = torch.flip(images[0], dims=[-1])
    is_flip = torch.tensor([torch.equal(o, flipped) for o in out])
    is_same = torch.tensor([torch.equal(o, images[0]) for o in out])
    assert bool((is_flip | is_same).all())
    assert bool(is_flip.any()) and bool(is_same.any())


def test_each_output_is_a_window_of_the_padded_possibly_flipped_image():
    images, padding = _asymmetric_images(24), 2
    out = augment_flip_crop(images, torch.Generator().manual_seed(1), padding=padding)
    size = images.shape[-1]
    seen = set()
    for image, result in zip(images, out):
        matches = []
        for flip in (False, True):
            padded = F.pad(torch.flip(image, dims=[-1]) if flip else image, (padding,) * 4)
            for dy in range(2 * padding + 1):
                for dx in range(2 * padding + 1):
                    if torch.equal(padded[:, dy : dy + size, dx : dx + size], result):
                        matches.append((flip, dy, dx))
        assert len(matches) == 1, matches
        seen.add(matches[0])
    # 24 draws from 50 equally likely (flip, dy, dx) choices: far more than one distinct.
    assert len(seen) > 10


@pytest.mark.parametrize(("images", "padding", "message"), [
    (torch.rand(3, 32, 32), 4, r"4-D \(N, C, H, W\), got shape \(3, 32, 32\)"),
    (torch.rand(1, 3, 32, 32), -1, "padding must be >= 0, got -1"),
])
def test_augmentation_rejects_bad_input(images, padding, message):
    with pytest.raises(ValueError, match=message):
        augment_flip_crop(images, torch.Generator().manual_seed(0), padding=padding)
