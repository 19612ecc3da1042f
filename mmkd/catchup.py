"""What a restored trial finds in its own storage folder that Tune's last snapshot does not hold.

Tune snapshots its experiment from time to time and, on resume, restarts each trial the snapshot does
not call finished from the checkpoint the snapshot names (or from step 0). A driver killed between two
snapshots loses what its trials did since: a trial that finished after the last one would train again.
But each checkpoint reached the trial's storage folder when it was reported (``checkpoint_<n>``), and
with it the record of every report so far (``reporting.set_aside``: ``mmkd_examples/<step>.metrics.json``,
which Tune copies with each checkpoint). So a restored trial looks there first (``newer``): it continues
from the checkpoint of the highest step whose reports since Tune's checkpoint are all on record, after
re-sending those reports to Tune (``reporting.read_sent``) — a trial that had finished ends at once, with
the numbers it had. Anything missing or unreadable leaves Tune's checkpoint the starting point.

No torch, no Ray: the simulated trial (mmkd.sweep.simulate) uses it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmkd import names, reporting

if TYPE_CHECKING:
    from mmkd.config import TrainConfig, TrialConfig

#: Inside each of Tune's ``checkpoint_<n>`` folders: the trial's own checkpoint, with ``state.json``.
CHECKPOINT_DIR, STATE_FILE = "checkpoint", "state.json"


@dataclass(frozen=True)
class CatchUp:
    """A checkpoint newer than Tune's: its folder (``checkpoint_<n>``) and its step."""

    folder: Path
    step: int


def trial_folder(trial: TrialConfig, trial_dir_name: str) -> Path:
    """A trial's storage folder: ``<storage>/<name>/<trial>``, under ``confirm/`` in the confirm stage."""
    exp = Path(trial.sweep.storage) / trial.sweep.name
    return (exp / names.CONFIRM_DIR if trial.stage == "confirm" else exp) / trial_dir_name


def report_steps(train: TrainConfig, after: int, upto: int) -> list[int]:
    """The steps in (after, upto] at which a trial reports: every ``eval_every`` steps and the last."""
    steps = list(range((after // train.eval_every + 1) * train.eval_every, upto + 1, train.eval_every))
    if after < upto == train.max_steps and upto not in steps:
        steps.append(upto)
    return steps


def saved_step(folder: Path) -> int | None:
    """The step a ``checkpoint_<n>`` folder's checkpoint holds; None when it cannot be read."""
    try:
        return int(json.loads((folder / CHECKPOINT_DIR / STATE_FILE).read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def newer(trial_dir: Path, after: int, train: TrainConfig) -> CatchUp | None:
    """The checkpoint in ``trial_dir`` of the highest step beyond ``after`` (the step of Tune's
    checkpoint, 0 without one) whose reports since ``after`` are all on record; None if there is none.
    Steps, not folder names, order them: a trial resumed from an older checkpoint reuses the names of the
    ones after it."""
    found = [(step, p) for p in trial_dir.glob("checkpoint_*") if (step := saved_step(p)) is not None]
    for step, folder in sorted(found, reverse=True):
        if step <= after:
            break
        if all(reporting.read_sent(trial_dir, s) is not None for s in report_steps(train, after, step)):
            return CatchUp(folder, step)
    return None


def lost_reports(trial_dir: Path, after: int, upto: int, train: TrainConfig) -> list[dict[str, Any]]:
    """What the trial sent Tune at each report in (after, upto], from its records, in step order."""
    sent = (reporting.read_sent(trial_dir, step) for step in report_steps(train, after, upto))
    return [report for report in sent if report is not None]
