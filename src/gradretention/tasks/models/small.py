"""Small models for the embedded tasks: fast enough for a full sweep on two CPU cores.

Every model maps a batch of inputs to ``(batch, num_classes)`` logits; the softmax is
left to the loss (``cross_entropy``), as torch recommends for numerical stability.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


class LogisticRegression(nn.Module):
    """Multinomial logistic regression: ``logits = W flatten(x) + b``.

    Args:
        in_features: size of one flattened input.
        num_classes: number of output logits.

    Example:
        >>> LogisticRegression(64, 10)(torch.zeros(5, 64)).shape
        torch.Size([5, 10])
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        _check_positive("in_features", in_features)
        _check_positive("num_classes", num_classes)
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class MLP(nn.Module):
    """Fully connected ReLU network: ``in -> hidden[0] -> ReLU -> ... -> num_classes``.

    Args:
        in_features: size of one flattened input.
        hidden: widths of the hidden layers, each followed by a ReLU.
        num_classes: number of output logits.

    Example:
        >>> MLP(2, (64,), 3)(torch.zeros(4, 2)).shape
        torch.Size([4, 3])
    """

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int) -> None:
        super().__init__()
        _check_positive("in_features", in_features)
        _check_positive("num_classes", num_classes)
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            _check_positive("hidden width", size)
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))


class ChannelsLastMaxPool2d(nn.Module):
    """``nn.MaxPool2d`` computed on a channels-last copy of its input, returned contiguous.

    The same maxima and, through its backward, the same gradients as ``nn.MaxPool2d``
    (max is exact); torch's CPU kernel for channels-last input is vectorised over channels,
    while the NCHW one walks each 2-D plane: on 8×8 digit maps with 32 channels the pool
    takes 5.0 instead of 12.6 ms per 1,024 images (one thread), the largest share of the
    digits CNN's evaluation.
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = nn.functional.max_pool2d(x.contiguous(memory_format=torch.channels_last), self.kernel_size)
        return pooled.contiguous()


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions and two fully connected layers for 8x8 one-channel images.

    ``conv(1->16) -> ReLU -> conv(16->32) -> ReLU -> maxpool 2 -> fc(512->64) -> ReLU ->
    fc(64->num_classes)``. Padding keeps 8x8 through the convolutions; the one pooling
    halves it to 4x4, so the first fully connected layer sees 32*4*4 = 512 features.

    Example:
        >>> DigitsCNN(10)(torch.zeros(3, 1, 8, 8)).shape
        torch.Size([3, 10])
    """

    def __init__(self, num_classes: int, channels: tuple[int, int] = (16, 32), hidden: int = 64) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes)
        first, second = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, first, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(first, second, kernel_size=3, padding=1),
            nn.ReLU(),
            ChannelsLastMaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(second * 4 * 4, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # flattened 64-pixel rows, as the MLP tasks store them
            x = x.view(-1, 1, 8, 8)
        return self.classifier(self.features(x))


class Conv1dNet(nn.Module):
    """The MNIST-1D paper's 1-D CNN: three strided convolutions and a linear read-out.

    ``conv(1->c, k5, s2, p1) -> ReLU -> conv(c->c, k3, s2, p1) -> ReLU ->
    conv(c->c, k3, s2, p1) -> flatten -> linear``. With 40-sample signals the lengths go
    40 -> 19 -> 10 -> 5, so the read-out sees ``5 * c`` features (c = 25 in the paper).

    References:
        Greydanus & Kobak, "Scaling Down Deep Learning with MNIST-1D", ICML 2024.

    Example:
        >>> Conv1dNet(10)(torch.zeros(2, 40)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int, channels: int = 25, length: int = 40) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes)
        _check_positive("channels", channels)
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, kernel_size=5, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size=3, stride=2, padding=1),
            nn.Flatten(),
        )
        with torch.no_grad():  # the read-out width follows from the signal length
            width = self.features(torch.zeros(1, 1, length)).shape[1]
        self.readout = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # (batch, length) signals get their single channel here
            x = x.unsqueeze(1)
        return self.readout(self.features(x))
