"""Models and augmentation for 32x32 colour images (CIFAR-10/100).

Every model takes float images ``(N, 3, 32, 32)`` and returns logits ``(N, num_classes)``.
:func:`augment_flip_crop` is the standard CIFAR training augmentation, batched on the
images' device.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# VGG configuration "D" (16 weight layers); "M" is a 2x2 max-pool.
VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


class CifarCNN(nn.Module):
    """Small conv net: two conv-conv-pool stages (32, 64 channels) and a 512-unit head.

    The layout of the classic Keras ``cifar10_cnn.py`` example, with 'same' padding
    throughout: [conv 3x3, ReLU] x2, max-pool, dropout 0.25, twice; then fc 4096->512,
    ReLU, dropout 0.5, fc 512->``num_classes``. About 2.2 M parameters.

    Args:
        num_classes: number of output logits.

    Example:
        >>> CifarCNN()(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes)
        layers: list[nn.Module] = []
        in_channels = 3
        for width in (32, 64):
            layers += [
                nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                nn.MaxPool2d(2), nn.Dropout(0.25),
            ]
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 8 * 8, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, num_classes)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut; He et al. (2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18, CIFAR variant: 3x3 stem, no max-pool, BasicBlocks [2, 2, 2, 2].

    He et al. (2016), "Deep Residual Learning for Image Recognition", with the CIFAR
    adaptation popularised by ``kuangliu/pytorch-cifar``: the 7x7/stride-2 stem and
    max-pool of the ImageNet model are replaced by one 3x3/stride-1 conv so that 32x32
    inputs keep their resolution in the first stage. Stage widths 64, 128, 256, 512;
    global average pooling; one linear layer. About 11.2 M parameters.

    Args:
        num_classes: number of output logits.

    Example:
        >>> ResNet18()(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes)
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        blocks: list[nn.Module] = []
        in_channels = 64
        for stage, width in enumerate((64, 128, 256, 512)):
            first_stride = 1 if stage == 0 else 2
            blocks += [BasicBlock(in_channels, width, first_stride), BasicBlock(width, width, 1)]
            in_channels = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(512, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.stem(images))
        return self.head(features.mean(dim=(2, 3)))


class VGG16(nn.Module):
    """VGG-16 (configuration "D"), CIFAR variant, with batch norm by default.

    Simonyan & Zisserman (2015); the CIFAR-10 form used by Baydin et al. (2018) for the
    VGG experiment (``vgg.py`` in their code): thirteen 3x3 convs in five stages, each
    ending in a 2x2 max-pool, so 32x32 inputs reach 1x1x512; classifier dropout,
    512->512, ReLU, dropout, 512->512, ReLU, 512->``num_classes``. Convolutions use
    He-normal (fan-out) init with zero bias, as there.

    .. note:: The HD paper trains ``vgg16()`` *without* batch norm; ``batch_norm=False``
       reproduces it. ``classifier_hidden=0`` gives a single 512->``num_classes`` layer.

    Args:
        num_classes: number of output logits.
        batch_norm: insert ``BatchNorm2d`` after every convolution.
        classifier_hidden: width of the two hidden classifier layers (0 for none).
        dropout: dropout probability before each hidden classifier layer.

    Example:
        >>> VGG16()(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self, num_classes: int = 10, batch_norm: bool = True, classifier_hidden: int = 512, dropout: float = 0.5
    ) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes)
        if classifier_hidden < 0:
            raise ValueError(f"classifier_hidden must be >= 0, got {classifier_hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.features = _vgg_features(VGG16_CONFIG, batch_norm)
        head: list[nn.Module] = [nn.Flatten()]
        width = 512
        if classifier_hidden:
            for _ in range(2):
                head += [nn.Dropout(dropout), nn.Linear(width, classifier_hidden), nn.ReLU()]
                width = classifier_hidden
        head.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


def _vgg_features(config: tuple[int | str, ...], batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        conv = nn.Conv2d(in_channels, int(item), 3, padding=1)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(conv.bias)
        layers += [conv, nn.BatchNorm2d(int(item)), nn.ReLU()] if batch_norm else [conv, nn.ReLU()]
        in_channels = int(item)
    return nn.Sequential(*layers)


def augment_flip_crop(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random horizontal flip, then a random crop from the zero-padded image.

    The CIFAR training augmentation (``RandomHorizontalFlip()`` then
    ``RandomCrop(32, padding=4)``), done for the whole batch at once with two
    ``gather`` calls on the images' device. Each image is flipped with probability 1/2
    and cropped at an offset drawn uniformly from ``{0, ..., 2 * padding}`` per axis.

    Args:
        images: ``(N, C, H, W)`` float tensor.
        generator: source of randomness; draws happen on ``generator.device`` so a CPU
            generator also serves images on an accelerator. Same seed, same output.
        padding: zero border added on each side before cropping back to ``H x W``.

    Returns:
        A new tensor shaped like ``images``.

    Example:
        >>> out = augment_flip_crop(torch.rand(8, 3, 32, 32), torch.Generator().manual_seed(0))
        >>> out.shape
        torch.Size([8, 3, 32, 32])
    """
    if images.dim() != 4:
        raise ValueError(f"images must be 4-D (N, C, H, W), got shape {tuple(images.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    n, channels, height, width = images.shape
    flip = torch.rand(n, generator=generator, device=generator.device).lt(0.5).to(images.device)
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=generator.device)
    offsets = offsets.to(images.device)
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = offsets[0, :, None] + torch.arange(height, device=images.device)
    cols = offsets[1, :, None] + torch.arange(width, device=images.device)
    # Flip-then-crop of the padded image reads padded column (W + 2p - 1 - c) instead of c.
    cols = torch.where(flip[:, None], width + 2 * padding - 1 - cols, cols)
    padded_width = width + 2 * padding
    out = padded.gather(2, rows[:, None, :, None].expand(n, channels, height, padded_width))
    return out.gather(3, cols[:, None, None, :].expand(n, channels, height, width))
