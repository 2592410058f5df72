"""Small objectives shared by the optimizer tests."""

from __future__ import annotations

import torch


def make_regression_problem(dtype: torch.dtype = torch.float64, seed: int = 0):
    """A fixed linear-regression batch and a 2-layer model, the same for every call with one seed."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(32, 5, generator=generator, dtype=dtype)
    targets = torch.randn(32, 2, generator=generator, dtype=dtype)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).to(dtype)
    return model, inputs, targets


def regression_loss(model, inputs, targets) -> torch.Tensor:
    return torch.nn.functional.mse_loss(model(inputs), targets)
