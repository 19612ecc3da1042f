"""What the sweep benchmarks measure on the Tune driver (this process): a Tune callback and two timers.

- ``DriverTimer`` (a Tune callback): wall and CPU seconds of the driver between the start and the end of
  ``tuner.fit()`` (CPU = ``time.process_time()``: every thread of the driver process, Ray's included),
  and the number of results the driver handled; ``main_cpu_s`` is the CPU of the thread that runs Tune's
  loop (``time.thread_time()``: callbacks run in it), the rest is Ray's own threads and the syncer's.
- ``time_suggestions()``: wall and CPU time of every ``OptunaSearch.suggest`` call, with the number of
  trials the searcher had seen finish at that moment.
- ``time_snapshots()``: wall and CPU time of every experiment-state snapshot (``TuneController.save_to_dir``:
  trial states, searcher and callback state written to the experiment directory), and whether it was
  forced (Tune forces one when a trial has checkpointed ``num_to_keep`` times since the last).
"""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ray.tune import Callback


class DriverTimer(Callback):
    def __init__(self) -> None:
        self.wall_s = self.cpu_s = self.main_cpu_s = 0.0
        self.results = 0
        self._wall0 = self._cpu0 = self._main0 = 0.0
        # Seconds from the start of fit() to the first trial's start, and from the last trial's end to
        # the end of fit(): Tune's start-up (searcher, placement groups, actors) and wind-down.
        self.until_first_start_s = self.after_last_end_s = 0.0
        self._last_end = 0.0

    def setup(self, **info: Any) -> None:
        self._wall0, self._cpu0, self._main0 = time.perf_counter(), time.process_time(), time.thread_time()

    def on_trial_start(self, **info: Any) -> None:
        if not self.until_first_start_s:
            self.until_first_start_s = time.perf_counter() - self._wall0

    def on_trial_result(self, **info: Any) -> None:
        self.results += 1

    def on_trial_complete(self, **info: Any) -> None:
        self._last_end = time.perf_counter()

    def on_experiment_end(self, **info: Any) -> None:
        now = time.perf_counter()
        self.wall_s, self.cpu_s = now - self._wall0, time.process_time() - self._cpu0
        self.main_cpu_s = time.thread_time() - self._main0
        self.after_last_end_s = now - self._last_end if self._last_end else 0.0


class Interrupter(Callback):
    # Importable (not in a script's __main__): Tune pickles the callbacks with its run, and the resumed
    # sweep unpickles them in another process.
    """Ctrl-C once ``after`` trials have finished (the driver figures are taken at that moment)."""

    def __init__(self, timer: DriverTimer, after: int) -> None:
        self.timer, self.after, self.finished = timer, after, 0

    def on_trial_complete(self, **info: Any) -> None:
        self.finished += 1
        if self.finished == self.after:
            self.timer.on_experiment_end()
            os.kill(os.getpid(), signal.SIGINT)


@dataclass(frozen=True)
class Suggestion:
    finished: int  # trials the searcher had seen finish
    wall_s: float
    cpu_s: float  # of the calling thread


@contextmanager
def time_suggestions() -> Iterator[list[Suggestion]]:
    """Every ``OptunaSearch.suggest`` call, timed."""
    from ray.tune.search.optuna import OptunaSearch

    calls: list[Suggestion] = []
    original = OptunaSearch.suggest

    def timed(self: OptunaSearch, trial_id: str) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        out = original(self, trial_id)
        calls.append(
            Suggestion(len(self._completed_trials), time.perf_counter() - wall, time.thread_time() - cpu)
        )
        return out

    OptunaSearch.suggest = timed  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        OptunaSearch.suggest = original  # type: ignore[method-assign]


@dataclass(frozen=True)
class Snapshot:
    wall_s: float
    cpu_s: float
    forced: bool  # by CheckpointConfig(num_to_keep): a trial checkpointed that often since the last one


@contextmanager
def time_snapshots() -> Iterator[list[Snapshot]]:
    """Wall and driver CPU seconds of every experiment-state snapshot, and whether Tune forced it."""
    from ray.tune.execution.tune_controller import TuneController

    snapshots: list[Snapshot] = []
    original = TuneController.save_to_dir

    def timed(self: TuneController) -> None:
        forced = bool(self._checkpoint_manager._should_force_sync_up)
        wall, cpu = time.perf_counter(), time.process_time()
        original(self)
        snapshots.append(Snapshot(time.perf_counter() - wall, time.process_time() - cpu, forced))

    TuneController.save_to_dir = timed  # type: ignore[method-assign]
    try:
        yield snapshots
    finally:
        TuneController.save_to_dir = original  # type: ignore[method-assign]


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
