"""The runner lets Tune queue one trial per free slot while a sweep runs, and leaves no trace after."""

import os

import ray

from mmkd import config
from mmkd.sweep import runner


def test_pending_trials_follow_the_slots_and_are_unset_afterwards(monkeypatch):
    monkeypatch.delenv(runner.PENDING_ENV, raising=False)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 4.0})
    sweep = config.load("quickstart", ["resources={cpu: 1, gpu: 1}"])
    with runner._pending_trials(sweep):
        assert os.environ[runner.PENDING_ENV] == "4"  # 4 GPUs, one per trial
    # Not left behind for the next sweep in this process or a child process to take as the user's.
    assert runner.PENDING_ENV not in os.environ


def test_the_users_own_setting_wins(monkeypatch):
    monkeypatch.setenv(runner.PENDING_ENV, "2")
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0})
    with runner._pending_trials(config.load("quickstart")):
        assert os.environ[runner.PENDING_ENV] == "2"
    assert os.environ[runner.PENDING_ENV] == "2"
