"""A small U-Net for semantic segmentation, its loss and its metrics.

Masks are ``(N, H, W)`` integer class maps in which ``ignore_index`` (255, the Pascal
VOC boundary label) marks pixels that count for neither the loss nor the metrics.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

IGNORE_INDEX = 255


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class UNet(nn.Module):
    """Encoder-decoder with skip connections; Ronneberger et al. (2015), "U-Net".

    Differences from the paper, as in most modern re-implementations: 'same'-padded
    3x3 convolutions (output size = input size, no cropping of skips), batch norm after
    every convolution, fewer levels and a narrower base width for a CPU budget. Each
    level doubles the width (``base_width * 2**level``) and halves the resolution; the
    decoder upsamples with 2x2 transposed convolutions and concatenates the skip.

    Args:
        num_classes: output channels (21 for Pascal VOC: 20 objects + background).
        in_channels: input image channels.
        base_width: channels of the first level.
        levels: number of down/up-sampling steps; H and W must be divisible by
            ``2**levels``.

    Example:
        >>> UNet(num_classes=21, base_width=8, levels=2)(torch.zeros(1, 3, 16, 16)).shape
        torch.Size([1, 21, 16, 16])
    """

    def __init__(self, num_classes: int = 21, in_channels: int = 3, base_width: int = 16, levels: int = 3) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels), ("base_width", base_width)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        widths = [base_width * 2**level for level in range(levels + 1)]
        self.levels = levels
        self.stem = _double_conv(in_channels, widths[0])
        self.down = nn.ModuleList(_double_conv(widths[i], widths[i + 1]) for i in range(levels))
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(levels))
        self.up = nn.ModuleList(_double_conv(2 * widths[i], widths[i]) for i in range(levels))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Per-pixel logits ``(N, num_classes, H, W)`` for images ``(N, C, H, W)``."""
        factor = 2**self.levels
        if images.dim() != 4 or images.shape[2] % factor or images.shape[3] % factor:
            raise ValueError(
                f"UNet with {self.levels} levels needs images (N, C, H, W) with H and W divisible by "
                f"{factor}, got shape {tuple(images.shape)}"
            )
        skips = [self.stem(images)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for level in reversed(range(self.levels)):
            x = self.upsample[level](x)
            x = self.up[level](torch.cat([skips.pop(), x], dim=1))
        return self.head(x)


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean per-pixel cross entropy over the pixels that are not ``ignore_index``.

    Unlike ``F.cross_entropy(..., ignore_index=...)``, a batch whose pixels are all
    ignored gives 0 (with a gradient of zeros) instead of NaN, without a host sync.

    Args:
        logits: ``(N, C, H, W)``.
        masks: ``(N, H, W)`` integer class ids.
        ignore_index: label that marks pixels to leave out.
    """
    masks = masks.long()
    total = F.cross_entropy(logits, masks, ignore_index=ignore_index, reduction="sum")
    return total / masks.ne(ignore_index).sum().clamp_min(1)


def confusion_matrix(
    pred_logits: list[torch.Tensor], masks: list[torch.Tensor], num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Counts ``(num_classes, num_classes)``: row = true class, column = predicted class.

    Accumulated on the logits' device by ``bincount``; ignored pixels are dropped.
    """
    if len(pred_logits) != len(masks):
        raise ValueError(f"got {len(pred_logits)} logits batches but {len(masks)} mask batches")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    device = pred_logits[0].device if pred_logits else torch.device("cpu")
    counts = torch.zeros(num_classes * num_classes, dtype=torch.long, device=device)
    for logits, mask in zip(pred_logits, masks):
        if logits.dim() != 4 or logits.shape[1] != num_classes or logits.shape[2:] != mask.shape[1:]:
            raise ValueError(
                f"logits must be (N, {num_classes}, H, W) matching masks (N, H, W), got "
                f"{tuple(logits.shape)} and {tuple(mask.shape)}"
            )
        truth = mask.reshape(-1).long().to(device)
        predicted = logits.argmax(dim=1).reshape(-1)
        keep = truth.ne(ignore_index)
        truth, predicted = truth[keep], predicted[keep]
        # bincount would silently grow past num_classes**2 on a bad label; check first.
        if truth.numel() and bool((truth.min() < 0) | (truth.max() >= num_classes)):
            bad = sorted(set(truth[(truth < 0) | (truth >= num_classes)].unique().tolist()))
            raise ValueError(f"mask labels must be in [0, {num_classes}) or {ignore_index}, got {bad[:5]}")
        counts += torch.bincount(truth * num_classes + predicted, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def segmentation_metrics(
    pred_logits: list[torch.Tensor], masks: list[torch.Tensor], num_classes: int, ignore_index: int = IGNORE_INDEX
) -> dict[str, float]:
    """Mean IoU and pixel accuracy over a whole split.

    ``IoU_c = TP_c / (TP_c + FP_c + FN_c)``; ``miou`` averages it over the classes that
    occur in the truth or the prediction (a class absent from both has no IoU).
    ``pixel_accuracy`` is the share of non-ignored pixels predicted right.

    Args:
        pred_logits: batches of ``(N, num_classes, H, W)`` logits.
        masks: the matching ``(N, H, W)`` masks.
        num_classes: number of classes.
        ignore_index: label that marks pixels to leave out.

    Returns:
        ``{"miou": float, "pixel_accuracy": float}``; both 0.0 when no pixel counts.
    """
    confusion = confusion_matrix(pred_logits, masks, num_classes, ignore_index).double()
    true_positive = confusion.diagonal()
    union = confusion.sum(dim=0) + confusion.sum(dim=1) - true_positive
    present = union > 0
    iou = true_positive / union.clamp_min(1)
    miou = iou[present].mean() if bool(present.any()) else torch.tensor(0.0)
    accuracy = true_positive.sum() / confusion.sum().clamp_min(1)
    return {"miou": float(miou), "pixel_accuracy": float(accuracy)}
