"""Per-run measurements that the runner's metering delegates to (α movement, the train-loss target)."""
