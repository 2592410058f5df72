"""The seed claims, answered per comparison group: each optimizer against its own base rule.

The claims under test compare an adaptive method with the rule it modifies, not with
the best baseline: "HD is less sensitive to α₀" (``sgd_hd`` vs ``sgd``, ``adam_hd`` vs
``adam``), "RescaledSGD vs SGD", "EnhancedSGD is faster" (vs momentum SGD, which it
nudges), "the variance rule needs less tuning" (``adam_var`` vs ``adam``). Per pair:

* Δ width: lr-sensitivity width (decades) of the method minus its base, with a paired
  bootstrap CI over the tuning seeds;
* Δ test: the paired verdict of :mod:`~gradretention.bench.analysis.verdicts`, Holm over
  the group's pairs;
* steps ratio: geometric mean of steps-to-target method / base over the seeds both
  reached (train loss where recorded, else validation), with a bootstrap CI.
"""

from __future__ import annotations

import pandas as pd

from gradretention.bench.analysis import convergence, sensitivity, verdicts
from gradretention.bench.stats import BASELINES

# The baseline each rule prefix modifies; whole names first (their prefix would mislead).
_WHOLE = {"rescaled_sgd": "sgd", "enhanced_sgd": "momentum", "enhanced_sgd_spec": "momentum"}
_PREFIX = {"sgd": "sgd", "sgdn": "nesterov", "adam": "adam", "adamw": "adamw", "adagrad": "adagrad",
           "rmsprop": "rmsprop"}  # fmt: skip
CLAIM_COLUMNS = ("label", "base", "width_diff", "width_low", "width_high", "diff", "ci_t_low", "ci_t_high", "verdict",
                 "why", "steps_ratio", "steps_low", "steps_high", "steps_n", "steps_kind")  # fmt: skip


def base_rule(name: str) -> str | None:
    """The baseline a registry name modifies: ``adam_hd_sgdn`` -> ``adam``; a baseline -> ``None``."""
    name = name.split("[", 1)[0]
    if name in BASELINES:
        return None
    return _WHOLE.get(name) or _PREFIX.get(name.split("_", 1)[0])


def claim_pairs(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """``(label, base label)`` for every non-baseline label whose base baseline ran in the group."""
    names = runs.drop_duplicates("label").set_index("label")["optimizer_name"].astype(str)
    by_name = {name.split("[", 1)[0]: label for label, name in sorted(names.items()) if name in BASELINES}
    pairs = [(label, by_name.get(base_rule(name) or "")) for label, name in sorted(names.items())]
    return [(label, base) for label, base in pairs if base]


def claims(
    runs: pd.DataFrame, seeds: pd.DataFrame, grid: pd.DataFrame, metric: str, val_metric: str,
    n_test: int | None, rules: verdicts.Rules = verdicts.DEFAULT_RULES,
) -> pd.DataFrame:  # fmt: skip
    """One row per (method, base) pair of the group, columns :data:`CLAIM_COLUMNS`."""
    pairs = claim_pairs(runs)
    pairs = [(label, base) for label, base in pairs if label in seeds.columns and base in seeds.columns] if len(
        seeds) else []  # fmt: skip
    if not pairs:
        return pd.DataFrame(columns=list(CLAIM_COLUMNS))
    compared = verdicts.compare_pairs(seeds, pairs, metric, n_test, rules)
    reported = runs[runs["phase"].isin(("final", "single"))]
    column = "train_steps_to_target" if "train_steps_to_target" in reported else "steps_to_target"
    out = []
    for (label, base), (_, row) in zip(pairs, compared.iterrows()):
        width = sensitivity.width_difference(grid, label, base, val_metric) if len(grid) else (float("nan"),) * 3
        ratio = convergence.steps_ratio(reported, label, base, column)
        out.append(dict(zip(CLAIM_COLUMNS, (label, base, *width, row["diff"], row["ci_t_low"], row["ci_t_high"],
                                             row["verdict"], row["why"], *ratio,
                                             "train loss" if column.startswith("train") else "validation"))))  # fmt: skip
    return pd.DataFrame(out, columns=list(CLAIM_COLUMNS))
