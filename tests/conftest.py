"""Suite-wide settings."""

import signal
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


@pytest.fixture(autouse=True)
def ctrl_c_left_as_found() -> Iterator[None]:
    """A test must leave Ctrl-C working: the SIGINT handler and the main thread's signal mask as it found them.

    The Ctrl-C tests (``tests/bench/test_cli.py``, ``test_sweep.py``) send SIGINT to the test process;
    a test that left SIGINT ignored or blocked in the same xdist worker would make them fail later,
    far from the cause (seen once on CI, not reproduced). This fails the culprit by name and restores the state.
    """
    handler, mask = signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield
    after_handler, after_mask = signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if after_handler is not handler or after_mask != mask:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        pytest.fail(f"this test left SIGINT's handler {after_handler!r} (was {handler!r}) and the blocked signals "
                    f"{sorted(after_mask)} (were {sorted(mask)}); Ctrl-C would no longer reach the process")
