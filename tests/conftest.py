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


@pytest.fixture(autouse=True)
def no_system_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the data folders they make, not what a system package installed
    (``/usr/share/datasets``); a test that wants the real files sets ``SYSTEM_DATA_DIRS`` back."""
    from gradretention.tasks.readers import locate

    monkeypatch.setattr(locate, "SYSTEM_DATA_DIRS", ())
