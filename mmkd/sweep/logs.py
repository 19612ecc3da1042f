"""What the Tune driver writes into each trial's folder: ``result.json`` (one line per report: the results
table reads it), ``params.json`` (the trial's config) and the TensorBoard events (``telemetry``).

Tune would add a CSV log (``progress.csv``) and a pickled config (``params.pkl``) too. Nothing reads them
(Tune's own analysis prefers ``result.json``), and every file a trial has on the driver is copied to
the storage path again at each experiment snapshot: at 2,000 trials, 10,000 small files per snapshot
with Tune's five files per trial (see BENCHMARKS.md). The loggers are passed to Tune with the sweep and
stored in it, so a sweep resumes with the loggers it was started with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.result import EXPR_PARAM_FILE
from ray.tune.utils.util import SafeFallbackEncoder

from mmkd.sweep.telemetry import LiveTBXLogger


class ResultLogger(JsonLoggerCallback):
    """Tune's ``result.json`` and ``params.json`` logger, without ``params.pkl``."""

    def update_config(self, trial: Any, config: dict[str, Any]) -> None:
        self._trial_configs[trial] = config
        trial.init_local_path()
        with Path(trial.local_path, EXPR_PARAM_FILE).open("w") as f:
            json.dump(config, f, indent=2, sort_keys=True, cls=SafeFallbackEncoder)


class NoProgressCSV(CSVLoggerCallback):
    """Writes nothing: Tune adds its CSV logger unless one is passed."""

    def log_trial_start(self, trial: Any) -> None:
        pass

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        pass

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        pass


def driver_loggers() -> list[Any]:
    return [ResultLogger(), NoProgressCSV(), LiveTBXLogger()]
