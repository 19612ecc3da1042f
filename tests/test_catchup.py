"""mmkd.catchup: which newer checkpoint a restored trial continues from, and what it re-sends Tune."""

import json
from pathlib import Path

import pytest

from mmkd import catchup, checkpoint, reporting
from mmkd.config import TrainConfig

TRAIN = TrainConfig(max_steps=35, eval_every=10)
KEEP = frozenset()


def _report(trial: Path, step: int) -> dict:
    """Report ``step`` as a trial does: its record goes to the trial's folder, the rest is sent."""
    full = {"step": step, "train/loss": 1.0 / step, "eval/score": float(step), "eval/ru/chrf": 2.0 * step}
    return reporting.set_aside(full, trial / reporting.EXAMPLES_DIR, KEEP)


def _checkpoint(trial: Path, name: str, step: int) -> Path:
    folder = trial / name
    (folder / catchup.CHECKPOINT_DIR).mkdir(parents=True)
    (folder / catchup.CHECKPOINT_DIR / catchup.STATE_FILE).write_text(json.dumps({"step": step}))
    return folder


@pytest.mark.parametrize(
    ("after", "upto", "steps"),
    [(0, 35, [10, 20, 30, 35]), (10, 30, [20, 30]), (30, 35, [35]), (35, 35, []), (0, 0, []), (5, 10, [10])],
)
def test_report_steps_are_every_eval_and_the_last(after, upto, steps):
    assert catchup.report_steps(TRAIN, after, upto) == steps


def test_the_record_keeps_what_was_sent_and_the_rest_apart(tmp_path):
    sent = _report(tmp_path, 10)
    assert sent == {"step": 10, "train/loss": 0.1, "eval/score": 10.0}
    assert reporting.read_sent(tmp_path, 10) == sent
    assert reporting.read_set_aside(tmp_path, 10) == {"eval/ru/chrf": 20.0}
    assert reporting.read_sent(tmp_path, 20) is None


def test_newest_checkpoint_whose_reports_are_all_on_record(tmp_path):
    for step in (10, 20, 30, 35):
        _report(tmp_path, step)
    _checkpoint(tmp_path, "checkpoint_000000", 10)
    _checkpoint(tmp_path, "checkpoint_000001", 20)
    last = _checkpoint(tmp_path, "checkpoint_000002", 35)
    assert catchup.newer(tmp_path, 10, TRAIN) == catchup.CatchUp(last, 35)
    assert catchup.newer(tmp_path, 0, TRAIN) == catchup.CatchUp(last, 35)
    assert catchup.newer(tmp_path, 35, TRAIN) is None  # nothing newer than Tune's own
    lost = catchup.lost_reports(tmp_path, 10, 35, TRAIN)
    assert [r["step"] for r in lost] == [20, 30, 35]
    assert lost[0] == {"step": 20, "train/loss": 0.05, "eval/score": 20.0}


def test_a_gap_in_the_record_or_an_unreadable_checkpoint_falls_back(tmp_path):
    for step in (10, 20, 35):  # 30's record never reached the storage
        _report(tmp_path, step)
    _checkpoint(tmp_path, "checkpoint_000000", 10)
    middle = _checkpoint(tmp_path, "checkpoint_000001", 20)
    _checkpoint(tmp_path, "checkpoint_000002", 35)
    (tmp_path / "checkpoint_000003" / catchup.CHECKPOINT_DIR).mkdir(parents=True)  # cut short: no state
    assert catchup.newer(tmp_path, 10, TRAIN) == catchup.CatchUp(middle, 20)
    (middle / catchup.CHECKPOINT_DIR / catchup.STATE_FILE).write_text("{")  # damaged
    assert catchup.newer(tmp_path, 10, TRAIN) is None
    assert catchup.newer(tmp_path, 0, TRAIN) == catchup.CatchUp(tmp_path / "checkpoint_000000", 10)


def test_steps_not_folder_names_order_checkpoints(tmp_path):
    """A trial resumed from checkpoint_000001 writes its next one as checkpoint_000002 again: the names
    of an earlier run's later checkpoints come back with other steps."""
    for step in (10, 20, 30):
        _report(tmp_path, step)
    _checkpoint(tmp_path, "checkpoint_000001", 10)
    newest = _checkpoint(tmp_path, "checkpoint_000002", 30)
    _checkpoint(tmp_path, "checkpoint_000003", 20)
    assert catchup.newer(tmp_path, 10, TRAIN) == catchup.CatchUp(newest, 30)


def test_the_state_file_is_the_checkpoints(tmp_path):
    assert catchup.STATE_FILE == checkpoint.META_FILE
