"""The tuning protocols: how each optimizer's lr (and hyperparameters) are chosen before the
final runs, the same way for every optimizer.

- :mod:`~gradretention.bench.protocol.grid` — the absolute half-decade grid and its edge extension;
- :mod:`~gradretention.bench.protocol.budget` — scrambled-Sobol trials over declared search spaces;
- :mod:`~gradretention.bench.protocol.selection` — scores over tuning seeds, the pick, its record;
- :mod:`~gradretention.bench.protocol.tuning` / :mod:`~gradretention.bench.protocol.plan` —
  the tuners the sweep drives round by round, and which one each (task, label) gets.

Definitions: ``/work/shared/specs/evidence.md`` ("Protocol"), summarised in
:mod:`gradretention.bench.sweep`.
"""
