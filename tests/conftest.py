"""Suite-wide settings."""

import torch

# One intra-op thread per test process: with pytest-xdist on 2 cores, torch's default
# thread pool oversubscribes the machine and small steps slow down by orders of magnitude.
torch.set_num_threads(1)
