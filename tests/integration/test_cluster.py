"""mmkd on a Ray cluster, for real: `mmkd sweep submit` through the Jobs API of a head started with
`ray start` and token authentication, the trials and their live `mmkd_*` metrics in the dashboard's
APIs, and trials placed only on nodes that have the GPUs they ask for.

The head gets its own ports and temp dir, and only its own processes are stopped at the end (never
`ray stop`, which stops every Ray on the machine). Every wait is bounded.
"""

import http.server
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest

from .micro import CHROMIUM, MICRO, page_text

pytestmark = pytest.mark.integration

RAY = Path(sys.executable).with_name("ray")
TOKEN = secrets.token_hex(16)
# Loopback only: never through a proxy the environment may name.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, token: str | None = TOKEN) -> tuple[int, str]:
    """(HTTP status, body); status 0 when nothing answers."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with OPENER.open(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def until(what: str, probe: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"no {what} after {seconds:.0f} s")


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def mmkd(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mmkd.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


# ---------------------------------------------------------------------------------------------------
# A head node with its dashboard, and one micro-sweep submitted to it
# ---------------------------------------------------------------------------------------------------


@dataclass
class Head:
    dashboard: str  # http://127.0.0.1:PORT
    metrics: str  # the node's Prometheus endpoint
    env: dict[str, str]  # for mmkd commands: the token, but no RAY_AUTH_MODE (mmkd must send it anyway)


def stop_tree(root: psutil.Process, temp: Path) -> None:
    """The head and everything it started: its process tree (job drivers start their own sessions, so a
    process group would miss them) and any process that names its temp dir."""
    procs = {root, *root.children(recursive=True)}
    for p in psutil.process_iter(["cmdline"]):
        if str(temp) in " ".join(p.info["cmdline"] or []):
            procs.add(p)
    for p in procs:
        with suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=15)
    for p in alive:
        with suppress(psutil.NoSuchProcess):
            p.kill()


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> Iterator[Head]:
    # Short: Ray's socket paths under the temp dir must fit in 107 bytes.
    temp = Path(tempfile.mkdtemp(prefix="mmkdray-", dir="/tmp"))
    gcs, dashboard, metrics, client, agent = free_ports(5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        PATH=f"{RAY.parent}{os.pathsep}{env.get('PATH', '')}",  # the job runs `python -m mmkd.cli`
        RAY_AUTH_TOKEN=TOKEN,
        MMKD_CACHE=str(tmp_path_factory.mktemp("cache")),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
    )
    # Trials live seconds here, and Ray's workers export metrics every 10 s by default.
    head_env = {**env, "RAY_AUTH_MODE": "token", "RAY_metrics_report_interval_ms": "1000"}
    ports = [
        f"--port={gcs}",
        f"--dashboard-port={dashboard}",
        f"--metrics-export-port={metrics}",
        f"--ray-client-server-port={client}",
        f"--dashboard-agent-listen-port={agent}",
    ]
    command = [str(RAY), "start", "--head", "--block", *ports, "--dashboard-host=127.0.0.1", "--num-cpus=2"]
    command += ["--num-gpus=0", f"--temp-dir={temp}", "--include-dashboard=true", "--disable-usage-stats"]
    log = (temp / "head.log").open("w")
    proc = subprocess.Popen(
        command, env=head_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    root = psutil.Process(proc.pid)
    url = f"http://127.0.0.1:{dashboard}"
    try:
        until("dashboard", lambda: proc.poll() is not None or get(f"{url}/api/jobs/")[0] == 200, 90)
        assert proc.poll() is None, (temp / "head.log").read_text()[-3000:]
        yield Head(url, f"http://127.0.0.1:{metrics}/metrics", env)
    finally:
        stop_tree(root, temp)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def job_of(head: Head, sweep: str) -> dict[str, Any] | None:
    status, body = get(f"{head.dashboard}/api/jobs/")
    jobs = json.loads(body) if status == 200 else []
    return next((j for j in jobs if (j.get("metadata") or {}).get("mmkd_sweep") == sweep), None)


def trial_actors(head: Head) -> list[dict[str, Any]]:
    status, body = get(f"{head.dashboard}/api/v0/actors?detail=1&limit=1000")
    actors = json.loads(body)["data"]["result"]["result"] if status == 200 else []
    # Tune's function-trainable actor. Tune's registry pickles the trainable; cloudpickle gives the driver
    # back its own class (qualname `wrap_function.<locals>.ImplicitFunc`) while that class is alive, and
    # a rebuilt `ImplicitFunc` once it was garbage-collected, so either name shows up.
    return [a for a in actors if a["class_name"].rsplit(".", 1)[-1] == "ImplicitFunc"]


def mmkd_metrics(head: Head, sweep: str) -> list[str]:
    body = get(head.metrics, token=None)[1]  # Prometheus scrapes it: no token
    return [line for line in body.splitlines() if "mmkd_" in line and f'sweep="{sweep}"' in line]


@dataclass
class Submitted:
    code: int
    out: str
    err: str
    storage: Path
    actors: list[dict[str, Any]]  # trial actors the dashboard listed while the job ran
    metrics: list[str]  # mmkd_* lines of the node's metrics endpoint while the job ran
    seconds: float


@pytest.fixture(scope="module")
def submitted(head, tmp_path_factory) -> Submitted:
    """`mmkd sweep submit --follow` of the micro-sweep; the dashboard is watched while the job runs
    (metrics leave the endpoint with the trial's worker)."""
    storage = tmp_path_factory.mktemp("runs")
    out, err = storage.parent / "submit.out", storage.parent / "submit.err"
    command = [
        sys.executable, "-m", "mmkd.cli", "sweep", "submit", "quickstart", "--address", head.dashboard,
        "--name", "micro", "--storage", str(storage), "--follow", *MICRO,
    ]  # fmt: skip
    started = time.monotonic()
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(command, env=head.env, stdout=stdout, stderr=stderr)
        actors: list[dict[str, Any]] = []
        metrics: list[str] = []
        deadline = started + 300
        while proc.poll() is None and time.monotonic() < deadline and not (actors and metrics):
            actors = actors or trial_actors(head)
            metrics = metrics or mmkd_metrics(head, "micro")
            time.sleep(0.5)
        try:
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    return Submitted(
        code, out.read_text(), err.read_text(), storage, actors, metrics, time.monotonic() - started
    )


# ---------------------------------------------------------------------------------------------------
# Token authentication
# ---------------------------------------------------------------------------------------------------


def test_the_dashboard_refuses_requests_without_the_token(head):
    url = f"{head.dashboard}/api/jobs/"
    assert get(url, token=None)[0] == 401
    assert get(url, token="not-" + TOKEN)[0] == 403
    assert get(url)[0] == 200


def test_a_refused_submission_is_one_line_and_submits_nothing(head):
    env = {**head.env, "RAY_AUTH_TOKEN": "not-" + TOKEN}
    done = mmkd("sweep", "submit", "quickstart", "--address", head.dashboard, "--name", "refused", env=env)
    assert done.returncode == 2
    assert "HTTP 403" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert job_of(head, "refused") is None


# ---------------------------------------------------------------------------------------------------
# A submitted sweep
# ---------------------------------------------------------------------------------------------------


def results(submitted: Submitted) -> pd.DataFrame:
    return pd.read_parquet(submitted.storage / "micro" / "mmkd" / "results.parquet")


def test_submit_follows_the_job_to_its_end(head, submitted):
    assert submitted.code == 0, submitted.out[-3000:] + submitted.err[-3000:]
    print(f"micro-sweep through `mmkd sweep submit --follow`: {submitted.seconds:.0f} s")
    job_id = re.search(r"submitted sweep micro as job (mmkd-micro-\w+)", submitted.out)
    assert job_id is not None, submitted.out[:2000]
    assert f"ray job logs --address {head.dashboard} --follow {job_id[1]}" in submitted.out
    assert f"{head.dashboard}/#/jobs/{job_id[1]}" in submitted.out
    assert "Best trials of" in submitted.out  # the job's own output, streamed
    assert f"job {job_id[1]} succeeded" in submitted.err
    job = job_of(head, "micro")
    assert job is not None and job["status"] == "SUCCEEDED" and job["submission_id"] == job_id[1]
    assert "sweep run sweep.yaml --name micro" in job["entrypoint"]
    assert not results(submitted).empty  # in the storage the job was given


def test_the_trials_are_actors_of_the_job_in_the_dashboard(head, submitted):
    assert submitted.actors, "no trial actor in /api/v0/actors while the job ran"
    job = job_of(head, "micro")
    assert job is not None and {a["job_id"] for a in submitted.actors} == {job["job_id"]}
    # Listed again now that they have run: an actor's repr is recorded once its constructor returns.
    actors = [a for a in trial_actors(head) if a["job_id"] == job["job_id"]]
    # Tune 2.60 starts trial actors without a name; the dashboard shows the trainable's repr.
    assert {(a["name"], a["repr_name"]) for a in actors} == {("", "tune_trial")}
    # Each trial writes which actor runs it into that actor's log (streamed here with the job's).
    for trial_id in results(submitted)["trial_id"].unique():
        line = re.search(rf"mmkd: actor (\w+) runs trial tune_trial_{trial_id} of sweep micro", submitted.out)
        assert line is not None and line[1] in {a["actor_id"] for a in actors}


def test_the_trials_export_live_mmkd_metrics(submitted):
    assert submitted.metrics, "no mmkd_* metric on the node's metrics endpoint while the job ran"
    names = {line.split("{")[0] for line in submitted.metrics}
    assert {"ray_mmkd_step", "ray_mmkd_eval_score"} <= names
    tagged = set(re.findall(r'trial="tune_trial_(\w+)"', "\n".join(submitted.metrics)))
    assert tagged and tagged <= set(results(submitted)["trial_id"])
    steps = [float(line.rsplit(" ", 1)[1]) for line in submitted.metrics if line.startswith("ray_mmkd_step{")]
    assert steps and set(steps) <= set(results(submitted)["step"].astype(float))


def test_the_dashboard_renders_the_job_its_sweep_and_its_trials(head, submitted):
    job = job_of(head, "micro")
    assert job is not None
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    # A browser cannot send the token in a header, so it looks through a proxy that adds it.
    with authorising_proxy(head.dashboard) as proxy:
        assert get(f"{proxy}/api/jobs/", token=None)[0] == 200
        text = page_text(f"{proxy}/#/jobs/{job['submission_id']}")
        actors = page_text(f"{proxy}/#/actors")
    # What the browser rendered: the job and its entrypoint naming the sweep ...
    assert job["submission_id"] in text and job["job_id"] in text, text[:3000]
    assert "--name micro" in text and '"mmkd_sweep": "micro"' in text, text[:3000]
    # ... and, on the actors page, its trials' actors (Tune's trainable, shown by its name).
    assert "tune_trial" in actors and job["job_id"] in actors, actors[:3000]


@contextmanager
def authorising_proxy(upstream: str) -> Iterator[str]:
    """A loopback HTTP server that forwards GETs to ``upstream`` with the token; yields its URL."""

    class Forward(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            request = urllib.request.Request(
                upstream + self.path, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            try:
                response = OPENER.open(request, timeout=30)
            except urllib.error.HTTPError as e:
                response = e
            body = response.read()
            self.send_response(response.status)
            self.send_header("Content-Type", response.headers.get("Content-Type", "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass  # no access log in the test output

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------------------
# GPU placement on a local multi-node cluster with logical GPUs
# ---------------------------------------------------------------------------------------------------


def test_trials_and_preparation_run_only_where_their_gpus_are(tmp_path):
    import ray
    from ray import tune
    from ray.cluster_utils import Cluster

    from mmkd.config import ResourcesConfig
    from mmkd.sweep.cluster import prepare_resources, trial_resources

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0})
    one_gpu = cluster.add_node(num_cpus=2, num_gpus=1)
    two_gpus = cluster.add_node(num_cpus=2, num_gpus=2)
    cluster.wait_for_nodes()

    def where() -> dict[str, Any]:
        return {"node": ray.get_runtime_context().get_node_id(), "gpus": len(ray.get_gpu_ids())}

    def probe(config: dict[str, Any]) -> None:
        tune.report(where())

    def trials(resources: ResourcesConfig, n: int) -> list[tuple[str, int]]:
        grid = tune.Tuner(
            tune.with_resources(probe, trial_resources(resources)),
            tune_config=tune.TuneConfig(num_samples=n),
            run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
        ).fit()
        return [(r.metrics["node"], r.metrics["gpus"]) for r in grid]

    try:
        ray.init(address=cluster.address)
        gpu_nodes = {one_gpu.node_id, two_gpus.node_id}
        assert trials(ResourcesConfig(cpu=1, gpu=2), 1) == [(two_gpus.node_id, 2)]
        shared = trials(ResourcesConfig(cpu=1, gpu=0.5), 3)
        assert len(shared) == 3 and all(node in gpu_nodes and gpus == 1 for node, gpus in shared)
        prep = prepare_resources(ResourcesConfig(cpu=1, gpu=0.5))
        placed = ray.get(ray.remote(where).options(**prep).remote())
        assert placed["node"] in gpu_nodes and placed["gpus"] == 1
    finally:
        ray.shutdown()
        cluster.shutdown()
