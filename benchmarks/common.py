"""What the benchmark scripts share: the quickstart sweep run through the real CLI, timed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def run_quickstart(
    name: str,
    storage: Path,
    overrides: Sequence[str] = (),
    cache: Path | None = None,
    sweep: str = "quickstart",
) -> float:
    """Wall seconds of `mmkd sweep run SWEEP --name NAME --storage STORAGE --set ...` (offline; SWEEP a
    shipped sweep's name, the quickstart by default)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if cache is not None:
        env["MMKD_CACHE"] = str(cache)
    sets = [arg for item in overrides for arg in ("--set", item)]
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mmkd.cli",
            "sweep",
            "run",
            sweep,
            "--name",
            name,
            "--storage",
            str(storage),
            *sets,
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start
