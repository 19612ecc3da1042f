"""The TensorBoard logger of the sweep driver: what a trial's event file holds."""

from mmkd.sweep.logs import LiveTensorBoard


class _Trial:  # what the logger reads of a Tune trial
    def __init__(self, path):
        self.local_path, self.evaluated_params = str(path), {"lr": 3e-3, "models": "l:s"}

    def init_local_path(self):
        pass


def _report(step, score):
    return {
        "training_iteration": step,
        "step": 80 * step,
        "train/loss": 2.0 / step,
        "train/loss_token": 0.5,  # not a live metric (and no longer in Tune's reports, mmkd.reporting)
        "eval/score": score,
        "eval/zero_shot/wlr": float("nan"),  # no determined output: left out, not written as NaN
        "eval/fr/chrf": 40.0,  # a per-language value: not a curve
        "config/lr": 3e-3,
        "done": False,
    }


def test_tensorboard_gets_the_live_metrics_of_each_report_then_the_hyperparameters(tmp_path, read_events):
    logger, trial = LiveTensorBoard(), _Trial(tmp_path)
    logger.log_trial_start(trial)
    logger.log_trial_result(1, trial, _report(1, 10.0))
    logger.log_trial_result(2, trial, _report(2, 12.5))
    logger.log_trial_end(trial)

    (path,) = tmp_path.glob("events.out.tfevents.*")
    events = [e for e in read_events(path) if e.summary.value]
    scalars = [(e.step, v.tag, v.simple_value) for e in events for v in e.summary.value]
    tags = [tag for _, tag, _ in scalars]
    assert sorted(scalars[:6]) == sorted(
        [
            (1, "ray/tune/step", 80),
            (1, "ray/tune/train/loss", 2.0),
            (1, "ray/tune/eval/score", 10.0),
            (2, "ray/tune/step", 160),
            (2, "ray/tune/train/loss", 1.0),
            (2, "ray/tune/eval/score", 12.5),
        ]
    )
    # NaN (nothing determined), per-language values and config values are not curves; then TensorBoard's
    # HParams summaries (the searched values with the last metrics), nothing else.
    assert tags[6:] == ["_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"]
