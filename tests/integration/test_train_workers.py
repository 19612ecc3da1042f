"""A micro sweep whose trials are Ray Train runs of 2 workers (``resources.workers: 2``) on a local
cluster of three nodes: it runs to the end; the dashboard's Train view (its API) lists one run per trial,
named after the trial, with its two workers and its status; a Train worker killed mid-trial (SIGKILL)
costs one restart of that run from the trial's last checkpoint, and no (trial, step) is reported twice.
"""

import json
import os
import re
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from .micro import CHROMIUM, page_text, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

NAME, MAX_STEPS, EVAL_EVERY = "w2", 36, 6  # six evaluations: room to catch a trial mid-way
EXPECTED_STEPS = list(range(EVAL_EVERY, MAX_STEPS + 1, EVAL_EVERY))
SWEEP = [
    "search.num_samples=2", "search.student=[xs]", "search.adapter_rank=[0, 4]",
    "family.zoo.steps=20", "family.zoo.corpus_lines=100", "teacher.steps=20", "stop.wlr=null",
    f"train.max_steps={MAX_STEPS}", f"train.eval_every={EVAL_EVERY}", "train.batch_size=8",
    "task.n_train=64", "task.n_dev=2", "task.languages=[ru, te]", "eval.max_new_tokens=8",
    "resources.workers=2", "resources.cpu=1", "resources.max_concurrent=1",
    "resources.worker_failures=1",
]  # fmt: skip
# Loopback only: never through a proxy the environment may name.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Killed:
    trial: str  # the trial's folder
    step: int  # its last evaluation when the worker was killed
    pid: int


@dataclass
class Ran:
    code: int | None
    exp: Path
    dashboard: str
    train_runs: list[dict[str, Any]] = field(default_factory=list)  # /api/train/v2/runs/v1, at the end
    killed: Killed | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train_runs(dashboard: str) -> list[dict[str, Any]]:
    with OPENER.open(f"{dashboard}/api/train/v2/runs/v1", timeout=30) as response:
        return list(json.loads(response.read())["train_runs"])


def _running_trial(exp: Path) -> tuple[str, int] | None:
    """(folder, step) of a trial whose Train run has registered a checkpoint and has evaluations to go;
    ``step`` is its last evaluation so far. A report's checkpoint is registered only once Train's
    controller has taken it from the workers (it polls them every 2 s), and then Train writes the run's
    ``checkpoint_manager_snapshot.json``; the workers may be steps further on by then. Rank 0 writes
    ``mmkd_examples/<step>.metrics.json`` to the trial's folder as it evaluates."""
    for folder in exp.glob("*/mmkd_examples"):
        trial = folder.parent.name
        registered = exp / "mmkd" / "train" / f"{NAME}.{trial}" / "checkpoint_manager_snapshot.json"
        steps = sorted(int(p.name.split(".")[0]) for p in folder.glob("*.metrics.json"))
        if registered.exists() and steps and steps[-1] < MAX_STEPS - EVAL_EVERY:
            return trial, steps[-1]
    return None


def _kill_a_worker(exp: Path, address: str, thread: threading.Thread) -> Killed | None:
    """SIGKILL one Train worker of the first trial seen mid-way, found through Ray's state API."""
    from ray.util.state import list_actors

    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and thread.is_alive():
        running = _running_trial(exp) if exp.exists() else None
        if running is not None:
            filters = [("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")]
            workers = list_actors(address=address, filters=filters, detail=True)
            if workers:  # max_concurrent=1: they are the running trial's
                pid = int(workers[-1]["pid"])
                os.kill(pid, signal.SIGKILL)
                return Killed(*running, pid)
        time.sleep(0.2)
    return None


def _cluster(dashboard_port: int) -> Any:
    """A head (1 CPU: the trials' drivers, the dashboard) and two nodes of 1 CPU (one worker on each:
    a trial's run spans two nodes). Ray gives a node 30 s to start, fixed; a loaded machine can miss it."""
    from ray.cluster_utils import Cluster

    from mmkd.sweep.cluster import addressed_ray

    for attempt in range(3):
        cluster = Cluster()
        try:
            with addressed_ray() as address:  # its processes must not ask another Ray on the machine
                cluster.add_node(num_cpus=1, include_dashboard=True, dashboard_port=dashboard_port)
                for _ in range(2):
                    cluster.add_node(num_cpus=1)
            assert cluster.address == address
            cluster.wait_for_nodes()
            return cluster
        except Exception:
            cluster.shutdown()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Iterator[Ran]:
    import ray

    from mmkd import config
    from mmkd.sweep import runner

    tmp = tmp_path_factory.mktemp("w2")
    dashboard_port = _free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMKD_CACHE", str(tmp / "cache"))
        # Ray's system setting (60 s by default): on a loaded machine a worker process can take longer to
        # register, and an actor whose process fails to start five times is unschedulable
        mp.setenv("RAY_worker_register_timeout_seconds", "600")
        cluster = _cluster(dashboard_port)
        try:
            sweep = config.load("quickstart", SWEEP)
            outcome: dict[str, int] = {}
            thread = threading.Thread(
                target=lambda: outcome.update(
                    code=runner.run(sweep, name=NAME, storage=str(tmp), address=cluster.address)
                ),
                daemon=True,  # a sweep still running at a failure must not keep pytest alive
            )
            thread.start()
            result = Ran(None, tmp / NAME, f"http://127.0.0.1:{dashboard_port}")
            result.killed = _kill_a_worker(result.exp, cluster.address, thread)
            thread.join(timeout=1800)
            result.code = outcome.get("code")
            result.train_runs = _train_runs(result.dashboard)
            yield result
        finally:
            ray.shutdown()
            cluster.shutdown()


def _runs_by_trial(ran: Ran) -> dict[str, dict[str, Any]]:
    trials = sorted(p.parent.name for p in ran.exp.glob("*/result.json"))
    by_name = {r["name"]: r for r in ran.train_runs}
    assert set(by_name) >= {f"{NAME}.{t}" for t in trials}, (trials, sorted(by_name))
    return {t: by_name[f"{NAME}.{t}"] for t in trials}


def test_the_sweep_runs_to_the_end_and_the_train_view_lists_its_trials(ran):
    assert ran.code == 0
    df = pd.read_parquet(ran.exp / "mmkd" / "results.parquet")
    assert df["trial_id"].nunique() == 2 and set(df["status"]) == {"TERMINATED"}
    assert (df.groupby("trial_id")["step"].max() == MAX_STEPS).all()
    assert set(df["workers"]) == {2} and set(df["strategy"]) == {"ddp"}
    # the teacher was finetuned by a Train run of 2 workers too (teacher.workers: resources.workers)
    (record,) = ran.exp.glob("mmkd/teachers/*/mmkd_teacher.json")
    assert json.loads(record.read_text())["workers"] == 2
    assert any(r["name"].startswith(f"{NAME}.teacher-") for r in ran.train_runs)
    assert not list(ran.exp.glob(f"mmkd/train/{NAME}.teacher-*"))  # its checkpoints removed once copied
    runs = _runs_by_trial(ran)
    assert len(runs) == 2
    for trial, run in runs.items():
        assert run["status"] == "FINISHED", (trial, run["status"], run.get("status_detail"))
        last = run["attempts"][-1]
        assert last["status"] == "FINISHED"
        assert sorted(w["world_rank"] for w in last["workers"]) == [0, 1]
        assert len({w["node_id"] for w in last["workers"]}) == 2  # one on each worker node


def test_a_killed_worker_restarts_its_run_from_the_last_checkpoint(ran):
    assert ran.killed is not None, "no trial was seen mid-way"
    run = _runs_by_trial(ran)[ran.killed.trial]
    attempts = run["attempts"]
    assert len(attempts) == 2, [a["status"] for a in attempts]  # one restart, inside the Train run
    assert ran.killed.pid in {w["pid"] for w in attempts[0]["workers"]}
    assert attempts[0]["status"] == "ERRORED" and attempts[1]["status"] == "FINISHED"
    for result in ran.exp.glob("*/result.json"):  # every evaluation once, to the end
        steps = [json.loads(line)["step"] for line in result.read_text().splitlines() if line.strip()]
        assert steps == EXPECTED_STEPS, (result.parent.name, steps)
    df = pd.read_parquet(ran.exp / "mmkd" / "results.parquet")
    rows = df[[ran.killed.trial.endswith(t) for t in df["trial_id"]]].sort_values("step")
    # The restarted attempt's reports say where it resumed: the checkpoint of the last report the first
    # attempt got through to Tune (each report carries one), not the start.
    before = rows[rows["resumed_from"] == ""]["step"].tolist()
    after = rows[rows["resumed_from"] != ""]
    assert before and set(after["resumed_from"]) == {after["resumed_from"].iloc[0]}, rows
    found = re.fullmatch(r"checkpoint_\S+ \(step (\d+)\)", str(after["resumed_from"].iloc[0]))
    assert found is not None and int(found[1]) == max(before) <= ran.killed.step, rows
    assert after["step"].tolist() == [s for s in EXPECTED_STEPS if s > max(before)]
    state = json.loads(sorted(ran.exp.glob("experiment_state-*.json"))[-1].read_text())
    assert all(json.loads(runtime)["num_failures"] == 0 for _, runtime in state["trial_data"])


def test_the_dashboard_pages_show_the_runs_actors(ran, tmp_path):
    """Ray's open-source dashboard (2.60) has no page for Train runs: its Actors page shows each run's
    controller and workers among the session's actors, and the runs by name are its API's. Both are
    screenshot into ``$MMKD_SCREENSHOTS`` (default: a temporary folder)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    # The Actors page lists every actor of the session (dead ones first, paginated): what it shows first
    # is not fixed, so only the API page's text is checked; both are screenshot.
    api = page_text(f"{ran.dashboard}/api/train/v2/runs/v1")
    assert all(f"{NAME}.{trial}" in api for trial in _runs_by_trial(ran)), api[:3000]
    shots = Path(os.environ.get("MMKD_SCREENSHOTS", tmp_path))
    for name, url in (("actors", "#/actors"), ("train-runs-api", "api/train/v2/runs/v1")):
        path = shots / f"dashboard-{NAME}-{name}.png"
        screenshot(f"{ran.dashboard}/{url}", path)
        assert path.stat().st_size > 10_000, path  # something rendered
