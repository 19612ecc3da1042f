"""What the Tune driver writes into each trial's folder, with Tune's own logger callbacks:
``result.json`` (one line per report: the results table reads it), ``params.json`` and ``params.pkl``
(the trial's config; Tune's ``JsonLoggerCallback``) and TensorBoard curves of the live metrics (Tune's
``TBXLoggerCallback``, shown only the keys of ``METRICS``, which is what Tune gets besides the metrics
the searcher, stopper and scheduler read (mmkd.reporting);
``tensorboard --logdir <storage>/<name>``).

Tune would add a CSV log (``progress.csv``) and a TensorBoard logger of every number too. Nothing reads
the CSV, and every file a trial has on the driver is copied to the storage path again at each experiment
snapshot (see BENCHMARKS.md); Tune's documented switch ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``, which
the runner sets while a sweep runs (``AUTO_LOGGERS_ENV``), keeps it from adding loggers of its own. The
loggers are stored with the sweep, so a sweep resumes with the loggers it was started with.
"""

from __future__ import annotations

from typing import Any

from ray.tune.logger import JsonLoggerCallback, LoggerCallback, TBXLoggerCallback
from ray.tune.result import TRAINING_ITERATION

from mmkd.sweep.telemetry import METRICS

AUTO_LOGGERS_ENV = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"


class LiveTensorBoard(LoggerCallback):
    """Tune's TensorBoard logger, given of each report only the live metrics (``METRICS``).

    Given every number (~140 scalars a report: per-language metrics, config values, Tune's counters)
    it cost the driver 8.5 ms of CPU per result, 2.6 ms given these keys (``benchmarks/tensorboard.py``).
    Per-language values and loss terms are in each evaluation's ``mmkd_examples/<step>.metrics.json``
    and the results table. At a trial's end Tune's logger writes the hyperparameters with the last
    values (TensorBoard's HParams view).
    """

    def __init__(self) -> None:
        self.tensorboard = TBXLoggerCallback()

    def log_trial_start(self, trial: Any) -> None:
        self.tensorboard.log_trial_start(trial)

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        kept = {key: value for key, value in result.items() if key in METRICS}
        # Tune's iteration stays the x axis, as in Tune's own curves.
        kept[TRAINING_ITERATION] = result[TRAINING_ITERATION]
        self.tensorboard.log_trial_result(iteration, trial, kept)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        self.tensorboard.log_trial_end(trial, failed)


def driver_loggers() -> list[Any]:
    return [JsonLoggerCallback(), LiveTensorBoard()]
