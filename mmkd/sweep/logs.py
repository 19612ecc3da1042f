"""What the Tune driver writes into each trial's folder: ``result.json`` (one line per report: the results
table reads it), ``params.json`` (the trial's config) and TensorBoard curves of the live metrics
(``tensorboard --logdir <storage>/<name>``).

Tune would add a CSV log (``progress.csv``) and a pickled config (``params.pkl``) too. Nothing reads them
(Tune's own analysis prefers ``result.json``), and every file a trial has on the driver is copied to
the storage path again at each experiment snapshot: at 2,000 trials, 10,000 small files per snapshot
with Tune's five files per trial (see BENCHMARKS.md). The loggers are passed to Tune with the sweep and
stored in it, so a sweep resumes with the loggers it was started with.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path
from typing import Any

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback
from ray.tune.result import EXPR_PARAM_FILE, TRAINING_ITERATION
from ray.tune.utils.util import SafeFallbackEncoder
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.record_writer import masked_crc32c
from tensorboardX.summary import hparams

from mmkd.sweep.telemetry import METRICS, finite_number


class ResultLogger(JsonLoggerCallback):
    """Tune's ``result.json`` and ``params.json`` logger, without ``params.pkl``."""

    def update_config(self, trial: Any, config: dict[str, Any]) -> None:
        self._trial_configs[trial] = config
        trial.init_local_path()
        with Path(trial.local_path, EXPR_PARAM_FILE).open("w") as f:
            json.dump(config, f, indent=2, sort_keys=True, cls=SafeFallbackEncoder)


class NoProgressCSV(CSVLoggerCallback):
    """Writes nothing: Tune adds its CSV logger unless one is passed."""

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        pass

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        pass


class LiveTBXLogger(TBXLoggerCallback):
    """TensorBoard curves of the keys of ``METRICS`` and the loss terms, one event file per trial.

    Tune's own logger writes every number of a report (~140 scalars here: per-language metrics, config
    values, Tune's counters) through a tensorboardX ``SummaryWriter`` per trial: a writer thread and a
    multiprocessing queue per trial, one queued event per scalar, and an fsync per result: 27 ms of driver
    CPU per result, 5.5 ms given only these keys, against 0.5 ms here (``benchmarks/tensorboard.py``).
    This logger writes one event per report (all its scalars in one summary) to the trial's event file, in
    the driver's thread, and the hyperparameters with the last values at the trial's end (TensorBoard's
    HParams view). Every metric is still in each trial's ``result.json`` and in the results table.
    Subclassing Tune's TensorBoard logger keeps Tune from adding its own.
    """

    def log_trial_start(self, trial: Any) -> None:
        self.log_trial_end(trial)  # a restarted trial (e.g. after a failure) starts a new event file
        trial.init_local_path()
        self._trial_writer[trial] = _EventFile(Path(trial.local_path))
        self._trial_result[trial] = {}

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        kept = {
            key: float(value)
            for key, value in result.items()
            if (key in METRICS or key.startswith("train/")) and finite_number(value)
        }
        values = [Summary.Value(tag=f"ray/tune/{key}", simple_value=value) for key, value in kept.items()]
        # Tune's iteration is the x axis, as in Tune's own TensorBoard curves.
        self._trial_writer[trial].write(Summary(value=values), step=result[TRAINING_ITERATION])
        self._trial_result[trial] = kept

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        events = self._trial_writer.pop(trial, None)
        last = self._trial_result.pop(trial, None)
        if events is None:
            return
        if last:
            given = trial.evaluated_params or {}
            params = {k: v for k, v in given.items() if isinstance(v, str | int | float)}
            for summary in hparams(hparam_dict=params, metric_dict=last):
                events.write(summary)
        events.close()


class _EventFile:
    """A TensorBoard event file: TFRecord frames (length, its CRC, an ``Event`` proto, its CRC), each
    handed to the OS at once. Unlike tensorboardX's writer it never fsyncs: an fsync per result blocked
    the driver on the disk, and a log TensorBoard reads needs no durability beyond the page cache."""

    def __init__(self, folder: Path) -> None:
        # Appending: a trial restarted within the same second keeps the events it wrote before.
        self._file = (folder / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}").open("ab")
        self._append(file_version="brain.Event:2")

    def write(self, summary: Any, step: int = 0) -> None:
        self._append(step=step, summary=summary)

    def close(self) -> None:
        self._file.close()

    def _append(self, **fields: Any) -> None:
        data = Event(wall_time=time.time(), **fields).SerializeToString()
        header = struct.pack("Q", len(data))
        self._file.write(
            header + struct.pack("I", masked_crc32c(header)) + data + struct.pack("I", masked_crc32c(data))
        )
        self._file.flush()


def driver_loggers() -> list[Any]:
    return [ResultLogger(), NoProgressCSV(), LiveTBXLogger()]
