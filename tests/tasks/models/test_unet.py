import pytest
import torch
from torch.nn import functional as F

from gradretention.tasks.models.unet import UNet, confusion_matrix, segmentation_loss, segmentation_metrics

IGNORE = 255
# Hand-made 4x4 case with 3 classes; the 255 pixel is predicted 0 but must not count.
TRUTH = torch.tensor([
    [0, 0, 1, 1],
    [0, 0, 1, 1],
    [2, 2, 1, IGNORE],
    [2, 2, 2, 2],
])
PREDICTION = torch.tensor([
    [0, 0, 1, 1],
    [0, 1, 1, 1],
    [2, 2, 0, 0],
    [2, 2, 2, 1],
])


def _logits(prediction: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(prediction, num_classes).permute(2, 0, 1).float().unsqueeze(0)


def test_unet_keeps_the_spatial_size_and_outputs_one_channel_per_class():
    assert UNet()(torch.rand(1, 3, 16, 24)).shape == (1, 21, 16, 24)
    assert UNet(num_classes=5, base_width=4, levels=2)(torch.rand(2, 3, 8, 12)).shape == (2, 5, 8, 12)


def test_unet_rejects_sizes_not_divisible_by_two_to_the_levels():
    with pytest.raises(ValueError, match=r"divisible by 8, got shape \(1, 3, 16, 20\)"):
        UNet(levels=3)(torch.rand(1, 3, 16, 20))


def test_a_few_adam_steps_lower_the_segmentation_loss(loss_before_after):
    model = UNet(num_classes=3, base_width=4, levels=2)
    images = torch.rand(2, 3, 8, 8)
    masks = torch.randint(0, 3, (2, 8, 8))
    masks[0, 0, 0] = IGNORE
    # Train-mode measurement: batch norm normalises with the batch statistics both times.
    before, after = loss_before_after(model, images, masks, loss_fn=segmentation_loss, lr=1e-2, eval_mode=False)
    assert after < before


def test_segmentation_loss_is_cross_entropy_over_the_kept_pixels():
    logits = torch.randn(2, 4, 3, 3)
    masks = torch.randint(0, 4, (2, 3, 3))
    masks[1, 2, :] = IGNORE
    expected = F.cross_entropy(logits, masks, ignore_index=IGNORE)
    torch.testing.assert_close(segmentation_loss(logits, masks), expected)


def test_segmentation_loss_of_a_fully_ignored_batch_is_zero_not_nan():
    logits = torch.randn(1, 4, 2, 2, requires_grad=True)
    loss = segmentation_loss(logits, torch.full((1, 2, 2), IGNORE))
    loss.backward()
    assert float(loss.detach()) == 0.0 and bool((logits.grad == 0).all())


def test_metrics_on_the_hand_made_example():
    # IoU0 = 3/(3+1+1), IoU1 = 4/(4+2+1), IoU2 = 5/(5+0+1); 12 of 15 kept pixels right.
    metrics = segmentation_metrics([_logits(PREDICTION, 3)], [TRUTH.unsqueeze(0)], num_classes=3)
    assert metrics["miou"] == pytest.approx((3 / 5 + 4 / 7 + 5 / 6) / 3)
    assert metrics["pixel_accuracy"] == pytest.approx(12 / 15)


def test_metrics_accumulate_over_batches_and_skip_classes_absent_everywhere():
    logits, masks = _logits(PREDICTION, 4), TRUTH.unsqueeze(0)
    twice = segmentation_metrics([logits, logits], [masks, masks], num_classes=4)
    assert twice["miou"] == pytest.approx((3 / 5 + 4 / 7 + 5 / 6) / 3)
    assert twice["pixel_accuracy"] == pytest.approx(12 / 15)
    assert confusion_matrix([logits, logits], [masks, masks], num_classes=4).sum() == 30


def test_a_class_only_predicted_counts_with_iou_zero():
    truth = torch.zeros(1, 2, 2, dtype=torch.long)
    prediction = torch.tensor([[0, 0], [0, 1]])
    metrics = segmentation_metrics([_logits(prediction, 2)], [truth], num_classes=2)
    assert metrics["miou"] == pytest.approx((3 / 4 + 0.0) / 2)


def test_metrics_reject_labels_outside_the_classes():
    with pytest.raises(ValueError, match=r"mask labels must be in \[0, 3\) or 255, got \[7\]"):
        segmentation_metrics([torch.zeros(1, 3, 2, 2)], [torch.tensor([[[0, 7], [1, 255]]])], num_classes=3)


def test_metrics_reject_logits_that_do_not_match_the_masks():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\) matching masks"):
        segmentation_metrics([torch.zeros(1, 4, 2, 2)], [torch.zeros(1, 2, 2, dtype=torch.long)], num_classes=3)
