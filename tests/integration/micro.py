"""What the integration tests share: a tiny, fast sweep through the real CLI, offline."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

# A zoo and teacher trained for a few steps: real models and code paths, seconds of CPU.
TINY = ["family.zoo.steps=20", "family.zoo.corpus_lines=100", "teacher.steps=20", "stop.wlr=null"]


def sets(*overrides: str) -> list[str]:
    """``--set`` arguments for the tiny settings plus ``overrides`` (later ones win)."""
    return [arg for item in (*TINY, *overrides) for arg in ("--set", item)]


# The 2-trial micro-sweep (test_micro_sweep.py; test_cluster.py submits the same one to a cluster).
MICRO = sets(
    "search.num_samples=2",
    "search.student=[xs, s]",
    "search.adapter_rank=[0, 4]",
    "train.max_steps=6",
    "train.eval_every=3",
    "train.batch_size=8",
    "task.n_train=64",
    "task.n_dev=3",
    "task.languages=[ru, hi, te, ta]",
    "eval.max_new_tokens=24",
)


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmkd.cli", *args]


def env(cache: Path) -> dict[str, str]:
    """This process's environment with a private model cache and no hub."""
    return {**os.environ, "MMKD_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def mmkd(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, env=env, timeout=timeout)


CHROMIUM = Path("/usr/bin/chromium")  # Debian's; .ci/run installs it


def page_text(url: str, seconds: float = 180) -> str:
    """The text a headless chromium renders at ``url``: the DOM once the page's scripts have run
    (``--dump-dom``), without its styles and scripts, whitespace collapsed."""
    browser = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000"]
    dom = subprocess.run(
        [*browser, "--dump-dom", url], capture_output=True, text=True, timeout=seconds, check=True
    ).stdout
    dom = re.sub(r"<(style|script)\b[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def screenshot(url: str, path: Path, size: str = "1280,800", seconds: float = 180) -> None:
    """A PNG of what a headless chromium renders at ``url`` once the page's scripts have run."""
    browser = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000"]
    shot = [*browser, "--hide-scrollbars", f"--window-size={size}", f"--screenshot={path}", url]
    subprocess.run(shot, capture_output=True, timeout=seconds, check=True)


def last_steps(experiment: Path) -> dict[str, int]:
    """Each trial folder of ``experiment`` (a Tune experiment dir) → the step of its last report."""
    out = {}
    for result in experiment.glob("*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if lines:
            out[result.parent.name] = lines[-1]["step"]
    return out
