"""Suite-wide settings."""

from collections.abc import Iterator

import pytest
import torch

# One intra-op thread per test process: with pytest-xdist on 2 cores, torch's default
# thread pool oversubscribes the machine and small steps slow down by orders of magnitude.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Every test starts with one thread, whatever an earlier test (or the code it ran) set."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
