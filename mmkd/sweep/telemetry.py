"""Live metrics of running trials: Prometheus gauges (the Ray dashboard's Metrics view, Grafana). The
driver writes the same keys as TensorBoard curves (``mmkd.sweep.logs``).

At every report a trial sets one Gauge per key of ``METRICS``, tagged with its sweep and trial name;
Ray's metrics agent on the trial's node exports them on the node's ``--metrics-export-port`` with
Ray's ``ray_`` prefix, e.g. ``ray_mmkd_eval_score{sweep="quickstart",trial="tune_trial_1a2b3_00000"}``.

Tune starts a trial's actor without a name (``ImplicitFunc``, shown as ``tune_trial``) and, with
``reuse_actors``, runs several trials in one actor; so the ``trial`` tag is what names a trial here,
and the first report of each trial writes one line to its actor's log (the dashboard's actor page).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from mmkd import names

#: report key -> (metric name, description)
METRICS: dict[str, tuple[str, str]] = {
    names.STEP: ("mmkd_step", "Training step of the trial's latest report."),
    names.TRAIN_LOSS: ("mmkd_train_loss", "Mean training loss since the previous report."),
    names.SCORE: (
        "mmkd_eval_score",
        "The sweep objective: the zero-shot mean of the task's primary metric (F1 for QA and NER, chrF "
        "otherwise).",
    ),
    names.SOURCE_CHRF: ("mmkd_source_chrf", "chrF in the source language."),
    names.ZERO_SHOT_CHRF: ("mmkd_zero_shot_chrf", "Mean chrF over the zero-shot languages."),
    names.ZERO_SHOT_WLR: ("mmkd_zero_shot_wlr", "Mean wrong-language rate over the zero-shot languages."),
    names.LOW_RESOURCE_CHRF: ("mmkd_low_resource_chrf", "Mean chrF over the low-resource languages."),
    names.LOW_RESOURCE_WLR: (
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
        if finite_number(value):
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


def finite_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
