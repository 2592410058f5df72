"""The digits CNN's channels-last max-pool is nn.MaxPool2d in value and gradient."""

from __future__ import annotations

import torch
from torch import nn

from gradretention.tasks.models.small import ChannelsLastMaxPool2d, DigitsCNN


def test_channels_last_pool_equals_max_pool_forward_and_backward():
    generator = torch.Generator().manual_seed(0)
    # ReLU'd activations: many exact zeros, so ties inside a window are common.
    activations = torch.relu(torch.randn(16, 32, 8, 8, generator=generator))
    weights = torch.randn(16, 32, 4, 4, generator=generator)
    ours_input = activations.clone().requires_grad_()
    torch_input = activations.clone().requires_grad_()
    ours, reference = ChannelsLastMaxPool2d(2)(ours_input), nn.MaxPool2d(2)(torch_input)
    assert torch.equal(ours, reference) and ours.is_contiguous()
    (ours * weights).sum().backward()
    (reference * weights).sum().backward()
    assert torch.equal(ours_input.grad, torch_input.grad)


def test_digits_cnn_keeps_its_parameter_names_and_shapes():
    names = {name: tuple(p.shape) for name, p in DigitsCNN(10).named_parameters()}
    assert names == {"features.0.weight": (16, 1, 3, 3), "features.0.bias": (16,),
                     "features.2.weight": (32, 16, 3, 3), "features.2.bias": (32,),
                     "classifier.1.weight": (64, 512), "classifier.1.bias": (64,),
                     "classifier.3.weight": (10, 64), "classifier.3.bias": (10,)}
    assert all(p.is_contiguous() for p in DigitsCNN(10).parameters())  # the optimizers' fast paths need it
