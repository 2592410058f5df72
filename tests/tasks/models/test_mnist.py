import pytest
import torch

from gradretention.tasks.models.mnist import MnistCNN, MnistLogReg, MnistMLP


@pytest.mark.parametrize(
    ("factory", "parameters"),
    [
        (MnistLogReg, 784 * 10 + 10),
        (MnistMLP, 785 * 1000 + 1001 * 1000 + 1001 * 10),
        # conv 1->32 (320), conv 32->64 (18,496), fc 9216->128 (1,179,776), fc 128->10 (1,290).
        (MnistCNN, 320 + 18_496 + 1_179_776 + 1_290),
    ],
)
def test_mnist_models_give_logits_per_class_with_paper_parameter_counts(factory, parameters):
    model = factory(num_classes=10)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert sum(p.numel() for p in model.parameters()) == parameters


def test_fully_connected_models_accept_flat_images_and_other_class_counts():
    flat = torch.rand(4, 784)
    assert MnistLogReg(num_classes=7)(flat).shape == (4, 7)
    assert MnistMLP(num_classes=7, hidden=16)(flat).shape == (4, 7)


@pytest.mark.parametrize("factory", [MnistLogReg, MnistMLP, MnistCNN])
def test_a_few_adam_steps_lower_the_loss_on_a_fixed_batch(factory, loss_before_after):
    images = torch.rand(16, 1, 28, 28)
    labels = torch.arange(16) % 10
    before, after = loss_before_after(factory(), images, labels)
    assert after < before


def test_cnn_rejects_images_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\).*\(2, 3, 28, 28\)"):
        MnistCNN()(torch.rand(2, 3, 28, 28))


@pytest.mark.parametrize("factory", [MnistLogReg, MnistMLP, MnistCNN])
def test_zero_classes_is_rejected(factory):
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        factory(num_classes=0)
