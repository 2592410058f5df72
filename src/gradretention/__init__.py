"""GradRetentionNet: adaptive learning-rate optimizers and the harness that benchmarks them."""

__version__ = "0.1.0"
