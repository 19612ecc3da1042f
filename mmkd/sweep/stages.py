"""Which stage a sweep is in: recorded by the driver, read by ``mmkd sweep status``.

A sweep goes ``preparing`` (tiny zoo, teachers finetuned, teacher-output caches) → ``searching`` (Tune's
trials) → ``writing results`` → ``confirming`` (the confirm stage, when the sweep has one) → ``done``. The
driver records each stage in ``<exp>/mmkd/stage.json`` with its host and pid, so ``status`` can tell a
running sweep from an interrupted one (the recorded driver is gone) — the stage alone cannot: a sweep
killed while preparing still says ``preparing``. The stage is for people; ``mmkd sweep resume`` never
trusts it and finds what is missing from the files themselves.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from mmkd.atomic import write_text

STAGE_FILE = "stage.json"
PREPARING, SEARCHING, RESULTS, CONFIRMING, DONE = (
    "preparing",
    "searching",
    "writing results",
    "confirming",
    "done",
)


def mark(mmkd_dir: Path, stage: str) -> None:
    record = {"stage": stage, "host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    write_text(mmkd_dir / STAGE_FILE, json.dumps(record))


def read(mmkd_dir: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((mmkd_dir / STAGE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "stage" in record else None


def describe(mmkd_dir: Path, teachers: int, cache: bool) -> str:
    """``stage: preparing (interrupted; teachers finetuned 0/1; teacher caches written 0/1)``."""
    record = read(mmkd_dir)
    if record is None:  # a sweep from before stages were recorded, or killed before its first record
        return "stage: unknown (no stage recorded)"
    stage = str(record["stage"])
    notes = [] if stage == DONE else [_driver(record)]
    if stage == PREPARING:
        notes.append(
            f"teachers finetuned {_count(mmkd_dir / 'teachers', '*-*/mmkd_teacher.json')}/{teachers}"
        )
        if cache:
            written = _count(mmkd_dir / "teacher-cache", "teacher-cache-*.safetensors")
            notes.append(f"teacher caches written {written}/{teachers}")
    return f"stage: {stage}" + (f" ({'; '.join(notes)})" if notes else "")


def _driver(record: dict[str, Any]) -> str:
    host, pid = record.get("host"), record.get("pid")
    if host != socket.gethostname() or not isinstance(pid, int):
        return f"driver on {host}"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "interrupted"
    except PermissionError:  # alive, owned by another user
        pass
    return f"running, pid {pid}"


def _count(folder: Path, pattern: str) -> int:
    return sum(1 for _ in folder.glob(pattern)) if folder.is_dir() else 0
