"""Early stopping of trials that drift into the wrong language (and ASHA on the objective).

The rule is a plain object with one decision method, testable without Ray; ``WLRStopper`` adapts it to
Tune's ``Stopper`` interface. Stopped trials end TERMINATED with their last metrics reported, so Optuna
learns from them like from any finished trial. Every stop is recorded with its reason in
``<experiment>/mmkd/stopped_by.json`` (the results table's ``stopped_by`` column reads it).

- ``absolute``: after ``grace_evals`` evaluations, stop a trial whose WLR is above ``threshold``.
- ``rung``: like ASHA's asynchronous rungs: after the grace period, a trial's WLR at an evaluation step
  is compared with the WLRs that earlier trials had at the same step; it is stopped when it lies in the
  worst ``1 - quantile`` of them (at least ``min_peers`` needed to judge) and above ``threshold``
  (a floor, so a trial is never stopped for a WLR that is fine in absolute terms).

A NaN WLR (nothing determined) never stops a trial: no evidence is not evidence of the wrong language.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from ray import tune

from mmkd.config import WLRStopConfig

STOPPED_BY_FILE = "stopped_by.json"


class WLRRule:
    """The rule of ``stop.wlr`` (its settings validated by the schema, mmkd.config.WLRStopConfig)."""

    def __init__(self, settings: WLRStopConfig) -> None:
        self.threshold, self.grace_evals, self.mode = settings.threshold, settings.grace_evals, settings.mode
        self.quantile, self.min_peers = settings.quantile, settings.min_peers
        self._steps_seen: dict[str, set[int]] = defaultdict(set)
        self._rungs: dict[int, dict[str, float]] = defaultdict(dict)

    def should_stop(self, trial_id: str, step: int, wlr: float) -> bool:
        """One decision per evaluation of a trial (a repeated step, e.g. after a resume, counts once)."""
        self._steps_seen[trial_id].add(step)
        if math.isnan(wlr):
            return False
        peers = [v for t, v in self._rungs[step].items() if t != trial_id]
        self._rungs[step][trial_id] = wlr
        if len(self._steps_seen[trial_id]) <= self.grace_evals or wlr <= self.threshold:
            return False
        if self.mode == "absolute":
            return True
        if len(peers) < self.min_peers:
            return False
        ranked = sorted(peers)
        cut = ranked[min(len(ranked) - 1, int(self.quantile * len(ranked)))]
        return wlr > cut


class WLRStopper(tune.Stopper):
    """Tune's stopper interface over ``WLRRule``; records each stop in ``stopped_by.json``."""

    def __init__(self, rule: WLRRule, metric: str, record_dir: Path, max_steps: int) -> None:
        self.rule, self.metric, self.record = rule, metric, record_dir / STOPPED_BY_FILE
        self.max_steps = max_steps

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = result.get(self.metric)
        # The last evaluation ends the trial anyway: stopping there would only mislabel why it ended.
        if value is None or "step" not in result or result["step"] >= self.max_steps:
            return False
        stop = self.rule.should_stop(trial_id, int(result["step"]), float(value))
        if stop:
            record_stop(self.record, trial_id, "wlr", int(result["step"]), float(value))
        return stop

    def stop_all(self) -> bool:
        return False


def record_stop(path: Path, trial_id: str, reason: str, step: int, value: float) -> None:
    stops = read_stops(path)
    stops[trial_id] = {"reason": reason, "step": step, "value": value}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stops, indent=1, sort_keys=True))
    tmp.replace(path)


def read_stops(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}
