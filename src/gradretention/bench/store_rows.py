"""How a run becomes a row of the results store and back, and the store's column names.

Kept apart from :mod:`gradretention.bench.store` (the connection, schema and transactions) so
that each reads on its own: a row holds the run's scalar fields as columns and its config,
final metrics, evaluation and provenance as JSON objects, so a new metric name never needs a
schema migration. A damaged cell is a :class:`StoreError` naming the file, run and column.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

from gradretention.bench.provenance import PROVENANCE_KEYS
from gradretention.bench.results import CurvePoint, RunConfig, RunResult


class StoreError(RuntimeError):
    """The results store cannot be opened, read or written."""


RUN_COLUMNS: tuple[str, ...] = (
    "run_id", "task", "label", "optimizer", "optimizer_name", "lr", "seed", "data_seed", "phase",
    "status", "reason", "steps", "epochs_completed", "wall_seconds", "steps_to_target",
    "seconds_to_target", "config_json", "eval_json", *PROVENANCE_KEYS, "created_at",
)  # fmt: skip
CURVE_COLUMNS: tuple[str, ...] = ("run_id", "step", "epoch", "split", "name", "group", "value")
SELECTION_COLUMNS: tuple[str, ...] = (
    "task", "label", "protocol", "chosen_spec", "chosen_lr", "score", "tuning_seeds", "final_seeds",
    "grid", "edge", "stop_reason", "trials", "final_run_ids", "created_at",
)  # fmt: skip

def optimizer_base_name(spec: str) -> str:
    """``"adam_hd[lr=0.001]"`` -> ``"adam_hd"``: the registry name of a parametrized spec."""
    return spec.split("[", 1)[0].strip()


def run_row(result: RunResult) -> dict[str, Any]:
    cfg = result.config
    return {
        "run_id": result.run_id, "task": cfg.task, "label": cfg.label or cfg.optimizer, "optimizer": cfg.optimizer,
        "optimizer_name": optimizer_base_name(cfg.optimizer), "lr": cfg.lr, "seed": cfg.seed,
        "data_seed": cfg.data_seed, "phase": cfg.phase, "status": result.status,
        "reason": result.reason, "steps": result.steps,
        "epochs_completed": result.epochs_completed, "wall_seconds": result.wall_seconds,
        "steps_to_target": result.steps_to_target,
        "seconds_to_target": result.seconds_to_target, "config_json": cfg.to_json(),
        "final_json": json.dumps(result.final, sort_keys=True),
        "eval_json": json.dumps(result.eval, sort_keys=True),
        "provenance_json": json.dumps(result.provenance, sort_keys=True),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"),
    }  # fmt: skip


JSON_COLUMNS: tuple[str, ...] = ("config_json", "final_json", "eval_json", "provenance_json")


def json_cell(row: sqlite3.Row, column: str, path: Path) -> dict[str, Any]:
    """The JSON object in ``row[column]`` (one of :data:`JSON_COLUMNS`).

    Raises:
        StoreError: the cell is not valid JSON, or valid JSON but not an object (a row edited
            by hand or by another program); the message names the file, the run and the column.
    """
    text = row[column]
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        problem = f"is not valid JSON ({exc})"
    else:
        if isinstance(value, dict):
            return value
        problem = f"must hold a JSON object, got {type(value).__name__} {str(text)[:40]!r}"
    run_id = row["run_id"]
    raise StoreError(f"{path}: run {run_id!r}, column {column} {problem}; delete that row "
                     f"(DELETE FROM runs WHERE run_id = '{run_id}') and rerun the sweep to train it again")


def frame_record(row: sqlite3.Row, path: Path) -> dict[str, Any]:
    record = {c: row[c] for c in RUN_COLUMNS if c in row.keys()}
    if not record.get("label"):  # a version-1 store read as it is: its runs are labelled by their optimizer
        record["label"] = row["optimizer"]
    config, final, _, provenance = (json_cell(row, column, path) for column in JSON_COLUMNS)  # all checked
    for key in PROVENANCE_KEYS:
        value = provenance.get(key)
        # Provenance values are strings; one edited into another JSON type is kept as its JSON text.
        record[key] = value if value is None or isinstance(value, str) else json.dumps(value, sort_keys=True)
    if record["device"] is None:  # runs recorded without provenance still name their device
        record["device"] = config.get("device")
    for key, value in final.items():
        record[f"final_{key}" if key in RUN_COLUMNS else key] = value
    return record


def result_from_row(row: sqlite3.Row, points: list[sqlite3.Row], path: Path) -> RunResult:
    curves = tuple(
        CurvePoint(
            step=p["step"], epoch=p["epoch"], split=p["split"], name=p["name"],
            # SQLite stores NaN as NULL; a logged NaN (a diverging loss) comes back as NaN.
            value=float("nan") if p["value"] is None else p["value"], group=p["group"],
        )
        for p in points
    )  # fmt: skip
    fields, final, evaluation, provenance = (json_cell(row, column, path) for column in JSON_COLUMNS)
    return RunResult(
        config=_config_from_fields(fields, row["run_id"], path), status=row["status"],
        reason=row["reason"], final=final, eval=evaluation, curves=curves, steps=row["steps"],
        epochs_completed=row["epochs_completed"], wall_seconds=row["wall_seconds"],
        steps_to_target=row["steps_to_target"], seconds_to_target=row["seconds_to_target"],
        provenance=provenance,
    )  # fmt: skip


def _config_from_fields(fields: dict[str, Any], run_id: str, path: Path) -> RunConfig:
    # JSON turned the ``extra`` tuples into lists; freeze them back so the config hashes.
    try:
        fields = {**fields, "extra": tuple((key, _frozen(value)) for key, value in fields.get("extra", ()))}
        return RunConfig(**fields)
    except (TypeError, ValueError) as exc:  # unknown or missing keys, a malformed extra
        raise StoreError(f"{path}: run {run_id!r}, column config_json is not a run config ({exc})") from exc


def _frozen(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value
