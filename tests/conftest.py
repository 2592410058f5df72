"""Suite-wide settings."""

import ctypes
import signal
import sys
from collections.abc import Iterator

import pytest
import torch

# One intra-op thread per test process: with pytest-xdist on 2 cores, torch's default
# thread pool oversubscribes the machine and small steps slow down by orders of magnitude.
torch.set_num_threads(1)
_LIBC = ctypes.CDLL(None, use_errno=True)


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


def _c_level_sigint_handler() -> int:
    """The address of SIGINT's handler as the kernel sees it (``sigaction``): a C library can replace
    Python's handler behind ``signal.getsignal``'s back."""
    action = ctypes.create_string_buffer(256)  # larger than any struct sigaction; sa_handler comes first
    if _LIBC.sigaction(signal.SIGINT, None, action) != 0:
        return -1
    return int.from_bytes(action.raw[:8], sys.byteorder)


@pytest.fixture(autouse=True)
def ctrl_c_left_as_found() -> Iterator[None]:
    """A test must leave Ctrl-C working: SIGINT's handler (Python's and the kernel's) and the signal mask.

    The Ctrl-C tests (``tests/bench/test_cli.py``, ``test_sweep.py``) send SIGINT to the test process;
    a test that left SIGINT ignored, blocked or handled by some C library in the same xdist worker
    would make them fail later, far from the cause. This fails the culprit by name and restores the
    state (``signal.signal`` reinstalls Python's handler in the kernel too).
    """
    state = signal.getsignal(signal.SIGINT), _c_level_sigint_handler(), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield
    after = signal.getsignal(signal.SIGINT), _c_level_sigint_handler(), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if after != state:
        signal.signal(signal.SIGINT, state[0])
        signal.pthread_sigmask(signal.SIG_SETMASK, state[2])
        pytest.fail(f"this test left SIGINT (Python handler, kernel handler address, blocked signals) = {after!r}, "
                    f"was {state!r}; Ctrl-C would no longer reach the process")


@pytest.fixture
def python_sigint_handler() -> Iterator[None]:
    """Python's own SIGINT handler (Ctrl-C → KeyboardInterrupt) for one test, whatever the process inherited.

    A command a non-interactive shell starts in the background (``.ci/run &``) inherits SIGINT
    ignored, and Python then never installs its handler: the Ctrl-C tests would see no
    KeyboardInterrupt at all (this is how they failed in two backgrounded CI runs).
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
