"""A sweep's experiment directory → one tidy table: one row per (trial, evaluation).

Reads Tune's own files, so it works on finished, partial and still-running sweeps and never imports Ray:
``<trial dir>/result.json`` (one JSON line per report) for metrics, the newest
``experiment_state-<time>.json`` for each trial's status, ``mmkd/stopped_by.json`` for early stops.
A trial resumed from a checkpoint may report a step twice; the table keeps the last report of each
(trial_id, step).

``stopped_by``: ``wlr`` (recorded by the WLR stopper), ``error`` (status ERROR), ``max_steps``
(TERMINATED at its last step), ``asha`` (TERMINATED earlier: the only other way mmkd stops a trial),
empty while a trial is still pending or running.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from mmkd.errors import UserInputError

STOPPED_BY_FILE = "stopped_by.json"
# Tune's bookkeeping in every result line; not ours to tabulate.
TUNE_KEYS = {
    "config",
    "done",
    "timestamp",
    "time_this_iter_s",
    "time_total_s",
    "pid",
    "hostname",
    "node_ip",
    "date",
    "time_since_restore",
    "iterations_since_restore",
    "checkpoint_dir_name",
    "should_checkpoint",
    "training_iteration",
    "experiment_tag",
}
ID_COLUMNS = ["trial_id", "trial_dir", "status", "stopped_by", "step"]


def find_experiment(name_or_path: str, storage: str | Path = "runs") -> Path:
    for path in (Path(name_or_path), Path(storage) / name_or_path):
        if path.is_dir() and (any(path.glob("experiment_state-*.json")) or (path / "mmkd").is_dir()):
            return path.resolve()
    raise UserInputError(f"{name_or_path}: no sweep there (nor under {storage}/)")


def trial_dirs(exp_dir: Path) -> list[Path]:
    return sorted(p.parent for p in exp_dir.glob("*/result.json") if p.parent.name != "mmkd")


def trial_status(exp_dir: Path) -> dict[str, str]:
    """trial_id -> Tune status, from the newest experiment state (the file name holds the time)."""
    for state_file in sorted(exp_dir.glob("experiment_state-*.json"), reverse=True):
        try:
            state = json.loads(state_file.read_text())
            return {
                trial["trial_id"]: trial["status"]
                for trial in (json.loads(trial_json) for trial_json, _ in state["trial_data"])
            }
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written right now, or damaged: an older snapshot still tells the statuses
    return {}


def _read_rows(trial_dir: Path) -> list[dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    with (trial_dir / "result.json").open(encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash mid-write
            if "step" in row:
                rows[int(row["step"])] = row  # a repeated step (after a resume): the last report wins
    return [rows[s] for s in sorted(rows)]


def load_results(exp_dir: Path) -> pd.DataFrame:
    statuses = trial_status(exp_dir)
    stops_file = exp_dir / "mmkd" / STOPPED_BY_FILE
    stops = json.loads(stops_file.read_text()) if stops_file.is_file() else {}
    records = []
    for tdir in trial_dirs(exp_dir):
        rows = _read_rows(tdir)
        if not rows:
            continue
        trial_id = str(rows[-1]["trial_id"])
        status = statuses.get(trial_id) or ("TERMINATED" if rows[-1].get("done") else "RUNNING")
        stopped_by = _stopped_by(status, stops.get(trial_id), rows[-1])
        for row in rows:
            record = {k: v for k, v in row.items() if k not in TUNE_KEYS}
            record.update(trial_id=trial_id, trial_dir=tdir.name, status=status, stopped_by=stopped_by)
            records.append(record)
    df = pd.DataFrame.from_records(records)
    if df.empty:
        return pd.DataFrame(columns=ID_COLUMNS)
    rest = sorted(c for c in df.columns if c not in ID_COLUMNS)
    params = [c for c in rest if "/" not in c]
    metrics = [c for c in rest if "/" in c]
    return (
        df[ID_COLUMNS + params + metrics]
        .sort_values(["trial_id", "step"], kind="stable")
        .reset_index(drop=True)
    )


def _stopped_by(status: str, stop: dict[str, Any] | None, last: dict[str, Any]) -> str:
    if stop is not None:
        return str(stop["reason"])
    if status == "ERROR":
        return "error"
    if status == "TERMINATED":
        return "max_steps" if last.get("step", 0) >= last.get("max_steps", float("inf")) else "asha"
    return ""


def write_tables(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """results.csv and results.parquet; the same table gives byte-identical files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, parquet = out_dir / "results.csv", out_dir / "results.parquet"
    df.to_csv(csv, index=False, float_format="%.6g")
    df.to_parquet(parquet, index=False)
    return [csv, parquet]
