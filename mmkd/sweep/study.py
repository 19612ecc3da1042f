"""The sweep's Optuna study: persistent, readable with ``optuna.load_study`` and optuna-dashboard.

    optuna-dashboard runs/quickstart/mmkd/optuna.journal      # or: mmkd sweep dashboard runs/quickstart
    python -c "import optuna; from optuna.storages import JournalStorage; ..."    # see open_storage()

Where it lives: ``search.storage`` (an RDB URL such as ``postgresql://user@host/db``) or, by default,
Optuna's journal file ``<storage>/<name>/mmkd/optuna.journal``. A journal rather than SQLite because the
sweep's storage is NFS on a cluster: SQLite relies on ``fcntl()`` locks, which many NFS servers break
(SQLite's FAQ), while the journal is an append-only log of whole lines under Optuna's symlink lock
(NFSv2+), and a reader such as optuna-dashboard on another machine skips a line still being written.
The driver is its only writer. The study is named after the sweep.

``StudySearch`` is Tune's ``OptunaSearch`` over that study; each study trial carries the user attributes
``trial_id`` (Tune's), ``teacher``, ``student``, ``ratio``, ``stage`` (set by the search space,
mmkd.sweep.space) and ``stopped_by`` (when the trial ends: as in the results table).

Resume. Tune saves the searcher with every experiment snapshot. Study trials asked after the last
snapshot are forgotten by the resumed Tune, which asks for new trials instead: they go back to Optuna's
waiting queue, so the next trials Tune asks for are handed those same study trials — their numbers and
configurations — and each of Tune's trials is in the study once, finished trials included. The sampler
(``TrialSeededTPE``) draws each trial's randomness from the seed and the trial's number, not from one
stream that the snapshot would rewind: the configurations proposed after a resume are those of an
uninterrupted run that saw the same results, and none is proposed twice.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.samplers import BaseSampler, TPESampler
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search.optuna import OptunaSearch

from mmkd.config import SweepConfig
from mmkd.errors import UserInputError
from mmkd.sweep.stopping import STOPPED_BY_FILE, read_stops

JOURNAL_FILE = "optuna.journal"


def open_storage(sweep: SweepConfig, mmkd_dir: Path) -> BaseStorage:
    if sweep.search.storage:
        return RDBStorage(sweep.search.storage)
    return JournalStorage(JournalFileBackend(str(mmkd_dir / JOURNAL_FILE)))


def check_new_study(sweep: SweepConfig, name: str) -> None:
    """A new sweep must not join another sweep's study of the same name in a shared database."""
    if sweep.search.storage and name in optuna.get_all_study_names(open_storage(sweep, Path())):
        raise UserInputError(
            f"search.storage: a study named {name!r} already exists in {sweep.search.storage}; "
            "pick another --name"
        )


class StudySearch(OptunaSearch):
    """``OptunaSearch`` whose study trials carry Tune's trial id and how the trial ended."""

    def __init__(self, space: Any, *, storage: BaseStorage, study_name: str, mmkd_dir: Path, **kwargs: Any):
        super().__init__(space=space, storage=storage, study_name=study_name, **kwargs)
        self.study_space, self.study_storage, self.study_name = space, storage, study_name
        self.stops_file = mmkd_dir / STOPPED_BY_FILE
        self.labels: dict[str, Callable[[str, Any], None]] = {}  # Tune trial id -> its study trial's setter

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config = super().suggest(trial_id)
        if config is not None and trial_id not in self.labels:
            label = self.study_space.set_user_attr  # the study trial the space was called with just now
            assert label is not None
            label("trial_id", trial_id)
            self.labels[trial_id] = label
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        # A trial that finished after Tune's last snapshot is run again on resume (BENCHMARKS.md): its
        # study trial is complete, and reporting to it raises, which would end the whole sweep.
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        label = self.labels.get(trial_id)
        if label is not None:
            recorded = read_stops(self.stops_file).get(trial_id, {}).get("reason")
            # A trial completed before an interruption may be run again by Tune from its checkpoint.
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                label("stopped_by", stopped_by(result, error, recorded))
        super().on_trial_complete(trial_id, result, error)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        storage = self.study_storage
        study_id = storage.get_study_id_from_name(self.study_name)
        for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("trial_id") not in self.labels:  # asked after the snapshot
                stored = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
                storage.set_trial_state_values(stored, state=TrialState.WAITING)


class TrialSeededTPE(BaseSampler):
    """Optuna's ``TPESampler`` whose randomness is a function of ``seed`` and the trial's number.

    A trial's proposal then depends on the seed, its number and the finished trials it sees, and not
    on the draws of the trials before it, which a resume would replay or skip (see the module's
    docstring). Each trial gets its own ``TPESampler(seed=…, **tpe)``, so within a run it proposes what
    TPE proposes, from another random stream per trial."""

    def __init__(self, seed: int, **tpe: Any) -> None:
        self.seed, self.tpe = seed, tpe
        self._by_number: dict[int, TPESampler] = {}

    def _sampler(self, trial: FrozenTrial) -> TPESampler:
        if trial.number not in self._by_number:
            seed = (self.seed * 1_000_003 + trial.number) % 2**32
            self._by_number[trial.number] = TPESampler(seed=seed, **self.tpe)
        return self._by_number[trial.number]

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return self._sampler(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        return self._sampler(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: Any
    ) -> Any:
        return self._sampler(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._sampler(trial).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        self._sampler(trial).after_trial(study, trial, state, values)
        self._by_number.pop(trial.number, None)

    def reseed_rng(self) -> None:
        """Nothing to reseed: every trial's stream follows from the seed and its number."""


def stopped_by(result: dict[str, Any] | None, error: bool, recorded: str | None) -> str:
    """Why a trial ended, the way the results table's ``stopped_by`` column says it."""
    result = result or {}
    if error:
        return "error"
    if result.get("stopped_by"):
        return str(result["stopped_by"])
    if recorded:
        return str(recorded)
    return "max_steps" if result.get("step", 0) >= result.get("max_steps", math.inf) else "asha"


def serve_dashboard(sweep: SweepConfig, mmkd_dir: Path, host: str, port: int) -> None:
    """optuna-dashboard on the sweep's study until Ctrl-C."""
    try:
        import optuna_dashboard
    except ImportError:
        raise UserInputError("the dashboard needs optuna-dashboard: pip install 'mmkd[dashboard]'") from None
    storage = open_storage(sweep, mmkd_dir)
    where = sweep.search.storage or mmkd_dir / JOURNAL_FILE
    print(f"optuna-dashboard of {where} at http://{host}:{port}/ (Ctrl-C stops it)", file=sys.stderr)
    optuna_dashboard.run_server(storage, host=host, port=port)
