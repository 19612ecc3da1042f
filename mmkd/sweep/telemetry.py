"""Live metrics of running trials: Prometheus gauges (the Ray dashboard's Metrics view, Grafana) and
TensorBoard curves (``tensorboard --logdir <storage>/<name>``).

At every report a trial sets one Gauge per key of ``METRICS``, tagged with its sweep and trial name;
Ray's metrics agent on the trial's node exports them on the node's ``--metrics-export-port`` with
Ray's ``ray_`` prefix, e.g. ``ray_mmkd_eval_score{sweep="quickstart",trial="tune_trial_1a2b3_00000"}``.

Tune (2.60) starts a trial's actor without a name (``ImplicitFunc``, shown as ``tune_trial``) and, with
``reuse_actors``, runs several trials in one actor; so the ``trial`` tag is what names a trial here,
and the first report of each trial writes one line to its actor's log (the dashboard's actor page).
"""

from __future__ import annotations

import functools
import math
import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

from ray.tune.logger import TBXLoggerCallback
from ray.tune.result import TRAINING_ITERATION  # the x axis of Tune's TensorBoard curves

#: report key -> (metric name, description)
METRICS: dict[str, tuple[str, str]] = {
    "step": ("mmkd_step", "Training step of the trial's latest report."),
    "train/loss": ("mmkd_train_loss", "Mean training loss since the previous report."),
    "eval/score": ("mmkd_eval_score", "The sweep objective (mean zero-shot chrF)."),
    "eval/source/chrf": ("mmkd_source_chrf", "chrF in the source language."),
    "eval/zero_shot/chrf": ("mmkd_zero_shot_chrf", "Mean chrF over the zero-shot languages."),
    "eval/zero_shot/wlr": ("mmkd_zero_shot_wlr", "Mean wrong-language rate over the zero-shot languages."),
    "eval/low_resource/chrf": ("mmkd_low_resource_chrf", "Mean chrF over the low-resource languages."),
    "eval/low_resource/wlr": (
        "mmkd_low_resource_wlr",
        "Mean wrong-language rate over the low-resource languages.",
    ),
}
TAG_KEYS = ("sweep", "trial")


def report_trial(metrics: Mapping[str, Any]) -> None:
    """From inside a Tune trial: set the Gauges, tagged with the names Tune gives the sweep and trial."""
    from ray import tune

    context = tune.get_context()
    sweep, trial = context.get_experiment_name(), context.get_trial_name()
    _announce(sweep, trial)
    record(metrics, sweep, trial)


def record(metrics: Mapping[str, Any], sweep: str, trial: str) -> None:
    """Set each Gauge whose key the report carries as a finite number (an evaluation may yield NaN)."""
    tags = {"sweep": sweep, "trial": trial}
    for key, gauge in _gauges().items():
        value = metrics.get(key)
        if _finite_number(value):
            gauge.set(float(value), tags=tags)


@functools.cache
def _gauges() -> dict[str, Any]:
    # Created on first use, inside the trial's worker: a metric registers with the process's Ray worker.
    from ray.util.metrics import Gauge

    return {key: Gauge(name, description, tag_keys=TAG_KEYS) for key, (name, description) in METRICS.items()}


@functools.cache  # once per trial and process: a reused actor logs each trial it runs
def _announce(sweep: str, trial: str) -> None:
    import ray

    actor = ray.get_runtime_context().get_actor_id()
    print(f"mmkd: actor {actor} runs trial {trial} of sweep {sweep}", flush=True)


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
        from tensorboardX.proto.summary_pb2 import Summary

        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        kept = {
            key: float(value)
            for key, value in result.items()
            if (key in METRICS or key.startswith("train/")) and _finite_number(value)
        }
        values = [Summary.Value(tag=f"ray/tune/{key}", simple_value=value) for key, value in kept.items()]
        self._trial_writer[trial].write(Summary(value=values), step=result[TRAINING_ITERATION])
        self._trial_result[trial] = kept

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        from tensorboardX.summary import hparams

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
    the driver on the disk, and a log TensorBoard reads needs no durability beyond the page cache.
    tensorboardX is imported here, not at the top: it imports torch, which ``--simulate``'s trial
    workers (they import this module for the gauges) must not load."""

    def __init__(self, folder: Path) -> None:
        # Appending: a trial restarted within the same second keeps the events it wrote before.
        self._file = (folder / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}").open("ab")
        self._append(file_version="brain.Event:2")

    def write(self, summary: Any, step: int = 0) -> None:
        self._append(step=step, summary=summary)

    def close(self) -> None:
        self._file.close()

    def _append(self, **fields: Any) -> None:
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.record_writer import masked_crc32c

        data = Event(wall_time=time.time(), **fields).SerializeToString()
        header = struct.pack("Q", len(data))
        self._file.write(
            header + struct.pack("I", masked_crc32c(header)) + data + struct.pack("I", masked_crc32c(data))
        )
        self._file.flush()


def _finite_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
