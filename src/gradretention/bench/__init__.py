"""The benchmark harness: runner, sweeps, executors, results store, statistics, report."""
