"""A sweep's experiment directory → one tidy table: one row per (trial, reported step).

Reads Ray Tune's files directly, so it works on finished, partial and still-running sweeps and never
imports Ray:

- ``<trial dir>/result.json``: one JSON line per ``tune.report``; the metrics and the trial's params.
  A trial resumed from a checkpoint may report a step again: the table keeps the last report of each
  (trial_id, step). A line cut short by a crash mid-write is skipped.
- ``<trial dir>/mmkd_examples/<step>.metrics.json``: the rest of the step's report, which trials keep
  out of Tune's (mmkd.reporting: per-language metrics, numeric metadata, timings); a missing one (not yet
  copied to the storage) leaves those columns empty.
- the newest ``experiment_state-<YYYY-MM-DD_HH-MM-SS>.json`` (the name holds the time): each trial's
  status (TERMINATED, ERROR, RUNNING, PENDING, PAUSED). Its ``trial_data`` is a list of
  ``[trial state JSON string, runtime metadata JSON string]`` pairs. When no state file is readable, or a
  trial is missing from it, the status comes from the trial's own files: ``error.txt`` → ERROR, a report
  with ``done`` or at ``max_steps`` → TERMINATED, otherwise RUNNING (Tune's function trainables never
  write ``done: true``, so ``done`` alone would call every finished trial running).
- ``<exp>/mmkd/`` is mmkd's own folder, never a trial.
- ``<exp>/confirm/`` is the confirm stage's own Tune experiment (mmkd.sweep.confirm), read the same way:
  its trials join the table with ``trial_dir`` ``confirm/<folder>``. ``stage`` is ``search`` for a trial
  that did not report one (sweeps from before the confirm stage).

``stopped_by`` (one value per trial, on each of its rows), first that applies:

1. the ``stopped_by`` a trial reported (its last non-empty value), or the stop the WLR stopper recorded in
   ``<exp>/mmkd/stopped_by.json``;
2. ``error`` when the trial's status is ERROR;
3. ``max_steps`` when TERMINATED with its last step ≥ its ``max_steps`` param;
4. ``asha`` when TERMINATED before that: in mmkd only the ASHA scheduler ends a trial early without
   recording why (the WLR stopper records its stops);
5. empty while a trial is pending, running or paused, or when it reports no ``max_steps``.

``error`` holds the last line of an errored trial's ``error.txt`` (e.g. ``RuntimeError: CUDA out of
memory``), empty otherwise.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mmkd.errors import UserInputError
from mmkd.names import CONFIRM_DIR
from mmkd.reporting import EXAMPLES_DIR, read_set_aside

MMKD_DIR = "mmkd"
STOPPED_BY_FILE = "stopped_by.json"  # written by mmkd.sweep.stopping (which may import Ray; we may not)
ERROR_FILE = "error.txt"
# Tune's own bookkeeping in every result line: not a param or a metric. ``checkpoint_dir_name`` stays:
# it names the step's checkpoint, when the step has one.
TUNE_KEYS = frozenset(
    {
        "config",
        "date",
        "done",
        "experiment_tag",
        "hostname",
        "iterations_since_restore",
        "node_ip",
        "pid",
        "should_checkpoint",
        "time_since_restore",
        "time_this_iter_s",
        "time_total_s",
        "timestamp",
        "training_iteration",
        "trial_id",
    }
)
ID_COLUMNS = ["trial_id", "trial_dir", "status", "stopped_by", "error", "step"]
FINISHED = ("TERMINATED", "ERROR")  # Tune's final statuses; any other is a trial still to run or running


def find_experiment(name_or_path: str, storage: str | Path = "runs") -> Path:
    """The experiment directory ``name_or_path`` names: a path to it, or a sweep name under ``storage``."""
    if "://" in name_or_path or "://" in str(storage):
        raise UserInputError(
            f"{name_or_path}: curves read a local experiment directory; copy the sweep from "
            f"{storage} to a local folder first"
        )
    for path in (Path(name_or_path), Path(storage) / name_or_path):
        if _is_experiment(path):
            return path.resolve()
    if Path(name_or_path).is_dir():
        raise UserInputError(
            f"{name_or_path}: not a sweep directory (no experiment_state-*.json and no trial folders)"
        )
    raise UserInputError(f"{name_or_path}: no such sweep (neither a directory nor a sweep under {storage}/)")


def _is_experiment(path: Path) -> bool:
    return path.is_dir() and (
        any(path.glob("experiment_state-*.json")) or bool(trial_dirs(path)) or (path / MMKD_DIR).is_dir()
    )


def trial_dirs(exp_dir: Path) -> list[Path]:
    """Trial folders that have reported at least once, in name order."""
    return sorted(
        p.parent for p in exp_dir.glob("*/result.json") if p.parent.name not in (MMKD_DIR, CONFIRM_DIR)
    )


@dataclass(frozen=True)
class TrialState:
    status: str
    logdir: str  # the trial folder's name, as Tune recorded it
    error_file: str  # relative to the trial folder; empty without an error


def trial_states(exp_dir: Path) -> dict[str, TrialState]:
    """trial_id → state, from the newest readable experiment state ({} when none is readable)."""
    # The file name holds the time (YYYY-MM-DD_HH-MM-SS), so name order is time order. The newest one
    # may be mid-write while a sweep runs; an older snapshot then still gives every trial it knew.
    for state_file in sorted(exp_dir.glob("experiment_state-*.json"), reverse=True):
        try:
            trial_data = json.loads(state_file.read_text(encoding="utf-8"))["trial_data"]
            return dict(_trial_state(state_json, runtime_json) for state_json, runtime_json in trial_data)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return {}


def _trial_state(state_json: str, runtime_json: str) -> tuple[str, TrialState]:
    state = json.loads(state_json)
    status = str(state["status"])
    error_file = ""
    if status == "ERROR":  # the runtime metadata is large (metric history): parse it only when needed
        error_file = json.loads(runtime_json).get("error_filename") or ERROR_FILE
    return str(state["trial_id"]), TrialState(status, str(state.get("relative_logdir", "")), error_file)


def trial_status(exp_dir: Path, states: Mapping[str, TrialState] | None = None) -> dict[str, str]:
    """trial_id → Tune status of every trial the sweep knows, pending ones included.

    ``states``: ``trial_states(exp_dir)`` when the caller has it already (a big sweep's state file takes a
    while to parse).
    """
    states = trial_states(exp_dir) if states is None else states
    statuses = {trial_id: state.status for trial_id, state in states.items()}
    known_dirs = {state.logdir for state in states.values()}
    for tdir in trial_dirs(exp_dir):
        if tdir.name in known_dirs:
            continue  # reading every result.json of a big sweep only to learn what the state says is slow
        rows = _read_rows(tdir)
        if rows:
            statuses.setdefault(_trial_id(tdir, rows), _status_from_files(tdir, rows))
    return dict(sorted(statuses.items()))


def _status_from_files(trial_dir: Path, rows: list[dict[str, Any]]) -> str:
    if (trial_dir / ERROR_FILE).is_file():
        return "ERROR"
    last = rows[-1]
    if any(row.get("done") for row in rows) or _reached_max_steps(last):
        return "TERMINATED"
    return "RUNNING"


def _reached_max_steps(last: dict[str, Any]) -> bool:
    max_steps = last.get("max_steps")
    return isinstance(max_steps, int | float) and last["step"] >= max_steps


def _read_rows(trial_dir: Path) -> list[dict[str, Any]]:
    """The trial's reports, one per step (the last report of a repeated step), in step order."""
    by_step: dict[int, dict[str, Any]] = {}
    try:
        text = (trial_dir / "result.json").read_text(encoding="utf-8")
    except OSError:
        return []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int | float):
            by_step[int(row["step"])] = row
    return [by_step[step] for step in sorted(by_step)]


def _trial_id(trial_dir: Path, rows: list[dict[str, Any]]) -> str:
    return str(rows[-1].get("trial_id") or trial_dir.name)


def load_results(
    exp_dir: Path, states: Mapping[str, TrialState] | None = None, *, include_confirm: bool = True
) -> pd.DataFrame:
    """The tidy table: one row per (trial_id, step); ids, then params, then metrics (``a/b`` names).

    Sorted by (trial_id, step); columns in a fixed order, so the same files give the same table.
    ``states`` as for ``trial_status``. The confirm stage's trials are included unless told otherwise.
    """
    states = trial_states(exp_dir) if states is None else states
    recorded_stops = _read_recorded_stops(exp_dir / MMKD_DIR / STOPPED_BY_FILE)
    records = _records(exp_dir, states, recorded_stops)
    stage_dir = exp_dir / CONFIRM_DIR
    if include_confirm and stage_dir.is_dir():
        records += _records(stage_dir, trial_states(stage_dir), {}, prefix=f"{CONFIRM_DIR}/")
    if not records:
        return pd.DataFrame({c: pd.Series(dtype="str" if c != "step" else "int64") for c in ID_COLUMNS})
    df = pd.DataFrame.from_records(records)
    df["stage"] = df["stage"].fillna("search") if "stage" in df else "search"
    rest = sorted(c for c in df.columns if c not in ID_COLUMNS)
    ordered = ID_COLUMNS + [c for c in rest if "/" not in c] + [c for c in rest if "/" in c]
    df = df[ordered].sort_values(["trial_id", "step"], kind="stable").reset_index(drop=True)
    df["step"] = df["step"].astype("int64")
    return _parquet_safe(df)


def _records(
    exp_dir: Path, states: Mapping[str, TrialState], recorded_stops: Mapping[str, str], prefix: str = ""
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for tdir in trial_dirs(exp_dir):
        rows = _read_rows(tdir)
        if not rows:
            continue
        trial_id = _trial_id(tdir, rows)
        state = states.get(trial_id)
        status = state.status if state else _status_from_files(tdir, rows)
        # A trial that failed and then recovered keeps its error.txt: only an ERROR trial's error counts.
        error = ""
        if status == "ERROR":
            error = _error_line(tdir / (state.error_file if state and state.error_file else ERROR_FILE))
        ids = {
            "trial_id": trial_id,
            "trial_dir": prefix + tdir.name,
            "status": status,
            "stopped_by": _stopped_by(status, rows, recorded_stops.get(trial_id)),
            "error": error,
        }
        for row in rows:
            # What the trial kept out of Tune's report (mmkd.reporting.set_aside).
            record = read_set_aside(tdir, int(row["step"]))
            record.update((k, v) for k, v in row.items() if k not in TUNE_KEYS)
            # Params Tune saw but the trial did not report: the table promises every param.
            config = row.get("config")
            if isinstance(config, dict):
                for key, value in config.items():
                    if key not in record and _is_scalar(value):
                        record[key] = value
            record.update(ids)
            records.append(record)
    return records


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns that mix types (a param that is a number in one trial and text in another, a list
    metric) become text: Parquet needs one type per column, and text keeps every value readable."""
    for column in [c for c in df.columns if pd.api.types.is_object_dtype(df[c])]:
        df[column] = df[column].map(_as_text)
    return df


def _as_text(value: object) -> object:
    if value is None or isinstance(value, str) or (isinstance(value, float) and math.isnan(value)):
        return value
    return json.dumps(value)


def _read_recorded_stops(path: Path) -> dict[str, str]:
    try:
        stops = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): str(v["reason"]) for k, v in stops.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # absent (no WLR stopper), or mid-write: the derived reason is the next best answer


def _stopped_by(status: str, rows: list[dict[str, Any]], recorded: str | None) -> str:
    reported = [str(row["stopped_by"]) for row in rows if row.get("stopped_by")]
    if reported:
        return reported[-1]
    if recorded:
        return recorded
    if status == "ERROR":
        return "error"
    if status == "TERMINATED" and isinstance(rows[-1].get("max_steps"), int | float):
        return "max_steps" if _reached_max_steps(rows[-1]) else "asha"
    return ""


def _error_line(path: Path) -> str:
    """The last non-empty line of Tune's error file: the exception and its message."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def read_examples(trial_dir: Path, step: int, split: str = "dev") -> pd.DataFrame | None:
    """The per-example rows (``lang``, ``id``, ``chrf``, ``verdict``) of the trial's evaluation at
    ``step`` on ``split`` (``dev``: ``<step>.jsonl``; ``test``, the confirm stage's: ``test-<step>.jsonl``),
    or None when there are none (not yet copied to the storage, or a damaged file).

    Rows are used only when they say they are of ``step``, so an interval never mixes up two evaluations.
    """
    name = f"{step:06d}.jsonl" if split == "dev" else f"{split}-{step:06d}.jsonl"
    try:
        lines = (trial_dir / EXAMPLES_DIR / name).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("step") == step:
            rows.append((str(row["lang"]), str(row.get("id", "")), float(row["chrf"]), str(row["verdict"])))
    return pd.DataFrame(rows, columns=["lang", "id", "chrf", "verdict"]) if rows else None


def write_tables(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``results.csv`` and ``results.parquet`` in ``out_dir``; the same table gives byte-identical files.

    Each file is written next to its final name and moved into place, so a reader (``mmkd sweep status``
    while the sweep runs) never sees half a table.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, parquet = out_dir / "results.csv", out_dir / "results.parquet"
    _atomic(csv, lambda tmp: df.to_csv(tmp, index=False, lineterminator="\n"))
    _atomic(parquet, lambda tmp: df.to_parquet(tmp, index=False, engine="pyarrow"))
    return [csv, parquet]


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    tmp.replace(path)
