"""Benchmark tasks: datasets (real-format readers), models, metrics and the TASKS registry."""
