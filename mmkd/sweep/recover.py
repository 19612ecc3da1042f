"""What `mmkd sweep resume` makes of the Tune files an interrupted sweep left, before Tune reads them.

Tune restores a run from its newest experiment snapshot (``experiment_state-<time>.json``, one per
driver session, copied to the storage without a rename). Three things a kill can leave that Tune would
trip over or count twice, each moved (never deleted) under ``<exp>/mmkd/set-aside-<time>/`` and said:

- no snapshot at all (killed before Tune's first): the run's files; the search starts afresh;
- a snapshot cut short by the kill (it does not parse): Tune would fail on it; an older session's
  snapshot is used, or the search starts afresh;
- trial folders the snapshot does not know (trials started after it): Tune will not continue them and
  the results table would count them beside the trials Tune proposes in their place.

Reads Tune's files as ``mmkd.curves.aggregate`` does, so both see the same trials.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from mmkd.curves.aggregate import MMKD_DIR, trial_states

STATE_GLOB = "experiment_state-*.json"


def prepare_restore(exp_path: Path, can_restore: bool) -> bool:
    """Whether Tune can restore the run at ``exp_path`` (``can_restore``: Tune's own check of its tuner
    state), after setting aside what would make it fail or count a trial twice."""
    if can_restore:
        for state in sorted(exp_path.glob(STATE_GLOB), reverse=True):
            if _readable(state):
                break
            set_aside(exp_path, [state], "an experiment snapshot cut short by the interruption")
    if not can_restore or not any(exp_path.glob(STATE_GLOB)):
        leftovers = [p for p in exp_path.iterdir() if p.name != MMKD_DIR]
        set_aside(
            exp_path, leftovers, "Tune had saved no state: its search starts afresh under the same name"
        )
        return False
    known = {state.logdir for state in trial_states(exp_path).values()}
    unknown = [p for p in exp_path.iterdir() if (p / "result.json").exists() and p.name not in known]
    set_aside(
        exp_path, unknown, "trials started after Tune's last snapshot; Tune proposes their places again"
    )
    return True


def _readable(state: Path) -> bool:
    try:
        return isinstance(json.loads(state.read_text(encoding="utf-8")).get("trial_data"), list)
    except (OSError, ValueError, AttributeError):
        return False


def set_aside(exp_path: Path, paths: Iterable[Path], why: str) -> None:
    paths = list(paths)
    if not paths:
        return
    aside = exp_path / MMKD_DIR / f"set-aside-{time.strftime('%Y%m%d-%H%M%S')}"
    aside.mkdir(parents=True, exist_ok=True)
    for path in paths:
        path.rename(aside / path.name)
    print(f"mmkd: {why} ({len(paths)} moved to {aside})", file=sys.stderr, flush=True)
