"""The WLR stopping rule on synthetic result streams: both modes, grace, NaN, repeated steps."""

import json
import math

import pytest

from mmkd.config import WLRStopConfig
from mmkd.sweep.stopping import STOPPED_BY_FILE, WLRRule, WLRStopper


def test_absolute_mode_waits_for_the_grace_period_then_stops_above_threshold():
    rule = WLRRule(WLRStopConfig(threshold=0.5, grace_evals=2, mode="absolute"))
    assert [rule.should_stop("a", s, 0.9) for s in (10, 20, 30)] == [False, False, True]
    assert not any(rule.should_stop("b", s, w) for s, w in [(10, 0.9), (20, 0.9), (30, 0.5), (40, 0.2)])


def test_nan_never_stops_and_a_repeated_step_counts_once():
    rule = WLRRule(WLRStopConfig(threshold=0.1, grace_evals=1))
    assert not rule.should_stop("a", 10, 0.9)
    assert not rule.should_stop("a", 10, 0.9)  # the same step again after a resume: still in grace
    assert not rule.should_stop("a", 20, math.nan)
    assert rule.should_stop("a", 30, 0.9)


def test_rung_mode_stops_only_the_worst_quantile_of_earlier_peers_at_the_same_step():
    rule = WLRRule(WLRStopConfig(threshold=0.2, grace_evals=0, mode="rung", quantile=0.75, min_peers=3))
    # The first three trials have no (or too few) peers yet: never stopped.
    assert [rule.should_stop(t, 10, w) for t, w in [("a", 0.3), ("b", 0.4), ("c", 0.5)]] == [False] * 3
    # Peers at step 10: [0.3, 0.4, 0.5]; the 0.75-quantile cut is 0.5: 0.6 is worse, 0.45 is not.
    assert rule.should_stop("d", 10, 0.6)
    assert not rule.should_stop("e", 10, 0.45)
    # Another step is another rung: no peers there yet.
    assert not rule.should_stop("f", 20, 0.99)
    # Below the threshold floor nothing is stopped, however bad relative to peers.
    floor = WLRRule(WLRStopConfig(threshold=0.5, grace_evals=0, mode="rung", min_peers=1))
    floor.should_stop("a", 10, 0.0)
    assert not floor.should_stop("b", 10, 0.4)


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"threshold": 1.5}, "1.5"),
        ({"grace_evals": -1}, "-1"),
        ({"mode": "relative"}, "relative"),
        ({"quantile": 1.0}, "1.0"),
        ({"min_peers": 0}, "0"),
    ],
)
def test_bad_settings_are_refused_at_once_quoting_the_value(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        WLRRule(WLRStopConfig(**kwargs))


def test_stopper_records_the_reason_and_ignores_results_without_the_metric(tmp_path):
    rule = WLRRule(WLRStopConfig(threshold=0.5, grace_evals=0))
    stopper = WLRStopper(rule, "eval/low_resource/wlr", tmp_path, max_steps=20)
    assert not stopper("t1", {"step": 5, "train/loss": 1.0})
    assert not stopper("t1", {"step": 10, "eval/low_resource/wlr": 0.4})
    assert stopper("t2", {"step": 10, "eval/low_resource/wlr": 0.8})
    assert not stopper("t3", {"step": 20, "eval/low_resource/wlr": 0.8})  # the last step: max_steps, not wlr
    assert not stopper.stop_all()
    stops = json.loads((tmp_path / STOPPED_BY_FILE).read_text())
    assert stops == {"t2": {"reason": "wlr", "step": 10, "value": 0.8}}
