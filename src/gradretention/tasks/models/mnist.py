"""Models for 28x28 grey-scale digits (MNIST and its drop-in twins).

All three take float images shaped ``(N, 1, 28, 28)`` (a flat ``(N, 784)`` also works
for the two fully connected ones) and return unnormalised logits ``(N, num_classes)``.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_PIXELS = 28 * 28


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


class MnistLogReg(nn.Module):
    """Multinomial logistic regression: one linear layer 784 -> ``num_classes``.

    The convex benchmark of Baydin et al. (2018), "Online Learning Rate Adaptation with
    Hypergradient Descent", Sec. 5.1 (``LogReg`` in their ``train.py``).

    Args:
        num_classes: number of output logits.

    Example:
        >>> MnistLogReg()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes)
        self.linear = nn.Linear(IMAGE_PIXELS, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.reshape(images.shape[0], IMAGE_PIXELS))


class MnistMLP(nn.Module):
    """Fully connected net 784-1000-1000-``num_classes`` with ReLU.

    The non-convex MNIST benchmark of Baydin et al. (2018), Sec. 5.2 (``MLP(28 * 28,
    1000, 10)`` in their ``train.py``): two hidden layers of 1000 units, no dropout.

    Args:
        num_classes: number of output logits.
        hidden: width of both hidden layers.

    Example:
        >>> MnistMLP(hidden=8)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, hidden: int = 1000) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes)
        _check_positive("hidden", hidden)
        self.layers = nn.Sequential(
            nn.Linear(IMAGE_PIXELS, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images.reshape(images.shape[0], IMAGE_PIXELS))


class MnistCNN(nn.Module):
    """Two 3x3 convolutions and two fully connected layers, as PyTorch's MNIST example.

    Layout of ``pytorch/examples/mnist/main.py``: conv 1->32, ReLU, conv 32->64, ReLU,
    2x2 max-pool, dropout 0.25, fc 9216->128, ReLU, dropout 0.5, fc 128->``num_classes``.

    .. note:: The example ends in ``log_softmax``; this returns raw logits so that the
       task's ``cross_entropy`` loss applies unchanged.

    Args:
        num_classes: number of output logits.

    Example:
        >>> MnistCNN()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes)
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
        )
        # 28 -> 26 -> 24 after the two unpadded convs, 12 after pooling: 64 * 12 * 12.
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 12 * 12, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
            raise ValueError(f"MnistCNN expects images shaped (N, 1, 28, 28), got {tuple(images.shape)}")
        return self.classifier(self.features(images))
