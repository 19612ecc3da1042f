"""What the integration tests share: a tiny, fast sweep through the real CLI, offline."""

import os
import subprocess
import sys
from pathlib import Path

# A zoo and teacher trained for a few steps: real models and code paths, seconds of CPU.
TINY = ["family.zoo.steps=20", "family.zoo.corpus_lines=100", "teacher.steps=20", "stop.wlr=null"]


def sets(*overrides: str) -> list[str]:
    """``--set`` arguments for the tiny settings plus ``overrides`` (later ones win)."""
    return [arg for item in (*TINY, *overrides) for arg in ("--set", item)]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmkd.cli", *args]


def env(cache: Path) -> dict[str, str]:
    """This process's environment with a private model cache and no hub."""
    return {**os.environ, "MMKD_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def mmkd(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, env=env, timeout=timeout)
