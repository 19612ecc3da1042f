"""Run a sweep on a Ray cluster: where trials go (resources) and how a sweep gets there (Jobs API).

    mmkd sweep submit quickstart --address http://127.0.0.1:8265
    mmkd sweep submit quickstart --address http://HEAD:8265 --name try2 --follow

``submit`` validates the sweep here (exit 2, nothing submitted), writes the resolved YAML into a
temporary folder that the Ray Jobs API uploads as the job's ``working_dir``, and submits
``python -m mmkd.cli sweep run sweep.yaml ...`` as the job's entrypoint: the Tune driver then runs on
the head node, next to the dashboard. Clusters with token authentication need this machine to hold
the cluster's token (``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH`` names, or
``~/.ray/auth_token``, in Ray's order); it is sent in the ``Authorization`` header.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mmkd import config as config_mod
from mmkd.config import ResourcesConfig
from mmkd.errors import UserInputError

DASHBOARD_PORT = 8265
GCS_PORT = 6379
ADDRESS_ENV = "RAY_API_SERVER_ADDRESS"  # what `ray job submit` reads when --address is not given
SWEEP_FILE = "sweep.yaml"


class ClusterError(RuntimeError):
    """The cluster could not be reached or refused the job for a reason other than the input: exit 1."""


# ---------------------------------------------------------------------------------------------------
# Where trials and preparation tasks run
# ---------------------------------------------------------------------------------------------------


def trial_resources(resources: ResourcesConfig) -> Any:
    """The placement group of one trial: a single bundle with all its CPUs and GPUs.

    A trial is one process, so every GPU it asks for must be on its node, and a bundle never spans
    nodes; Ray gives the trial's actor the bundle's GPUs (``CUDA_VISIBLE_DEVICES`` lists them all).
    """
    from ray import tune

    from mmkd.sweep.train_run import DRIVER_CPU

    gpu = resources.gpu
    if gpu > 1 and not float(gpu).is_integer():
        # Ray shares a GPU between trials, but cannot hand one trial 1.5 GPUs.
        raise UserInputError(f"resources.gpu: above 1 it must be a whole number of GPUs (got {gpu})")
    if resources.workers:  # the trial only drives its Train run, whose workers ask for their own
        return tune.PlacementGroupFactory([{"CPU": DRIVER_CPU}])
    bundle = {"CPU": float(resources.cpu), **({"GPU": float(gpu)} if gpu else {})}
    return tune.PlacementGroupFactory([bundle])


def trial_footprint(resources: ResourcesConfig) -> tuple[float, float]:
    """(CPUs, GPUs) one running trial takes from the cluster: its actor's, or its driver's and workers'."""
    from mmkd.sweep.train_run import DRIVER_CPU

    if resources.workers:
        return DRIVER_CPU + resources.workers * resources.cpu, resources.workers * resources.gpu
    return resources.cpu, resources.gpu


def prepare_resources(resources: ResourcesConfig) -> dict[str, float]:
    """Ray task options of the per-sweep preparation (zoo models, teacher finetuning, teacher cache).

    The trial's CPUs, and one whole GPU when trials use GPUs: a teacher is larger than any student, so
    it does not share a GPU the way small students may, and it is trained by one process, so a second
    GPU would sit idle. The preparation runs before the first trial, so it never waits for trials.
    """
    return {"num_cpus": float(resources.cpu), "num_gpus": 1.0 if resources.gpu > 0 else 0.0}


# ---------------------------------------------------------------------------------------------------
# Address and authentication
# ---------------------------------------------------------------------------------------------------


def dashboard_url(address: str | None) -> str:
    """The dashboard's HTTP address from ``--address`` (or ``$RAY_API_SERVER_ADDRESS``).

    ``HEAD`` and ``HEAD:PORT`` mean ``http://``, on the dashboard's port 8265 by default; a URL with a
    scheme (``https://HEAD/ray`` behind a proxy) is taken as written. Ray's other addresses (``ray://``
    for Ray Client, the GCS port 6379, ``auto``) are refused with the address to use instead: the Jobs
    API lives only on the dashboard.
    """
    given = (address or os.environ.get(ADDRESS_ENV, "")).strip()
    example = f"e.g. http://HEAD:{DASHBOARD_PORT}"
    if not given:
        raise UserInputError(
            f"--address: required, the Ray dashboard of the cluster, {example} (or set {ADDRESS_ENV})"
        )
    if given in ("auto", "local"):
        raise UserInputError(
            f"--address {given}: sweep submit needs the dashboard's address, {example}"
            " (to run on the Ray of this machine, use mmkd sweep run)"
        )
    bare = "://" not in given
    parts = urlsplit(f"http://{given}" if bare else given)
    host = parts.hostname
    if parts.scheme == "ray":
        raise UserInputError(
            f"--address {given}: that is a Ray Client address; sweep submit needs the dashboard's, "
            f"e.g. http://{host}:{DASHBOARD_PORT}"
        )
    if parts.scheme not in ("http", "https") or not host:
        raise UserInputError(f"--address {given}: expected http://HOST:PORT, {example}")
    try:
        port = parts.port
    except ValueError:
        raise UserInputError(f"--address {given}: the port is not a number from 0 to 65535") from None
    if port == GCS_PORT:
        raise UserInputError(
            f"--address {given}: {GCS_PORT} is the cluster's GCS port; the dashboard listens on "
            f"{DASHBOARD_PORT} by default (http://{host}:{DASHBOARD_PORT})"
        )
    netloc = f"{parts.netloc}:{DASHBOARD_PORT}" if bare and port is None else parts.netloc
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def find_token() -> tuple[str, str] | None:
    """This machine's Ray token and where it came from, looked up in Ray's order, or None.

    Ray reads ``RAY_AUTH_TOKEN``, else the file ``RAY_AUTH_TOKEN_PATH`` names (an unreadable or
    empty file is an error, not a fall-through), else ``~/.ray/auth_token``.
    """
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token, "RAY_AUTH_TOKEN"
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if named:
        try:
            token = Path(named).expanduser().read_text().strip()
        except OSError as e:
            raise UserInputError(
                f"RAY_AUTH_TOKEN_PATH={named}: cannot read the token ({e.strerror})"
            ) from None
        if not token:
            raise UserInputError(f"RAY_AUTH_TOKEN_PATH={named}: the file is empty")
        return token, named
    default = Path.home() / ".ray" / "auth_token"
    token = default.read_text().strip() if default.is_file() else ""
    return (token, str(default)) if token else None


def auth_headers(token: tuple[str, str] | None) -> dict[str, str]:
    """The header Ray's dashboard checks; sent whenever a token exists (a cluster without token
    authentication ignores it), so no ``RAY_AUTH_MODE`` needs setting in this process."""
    return {"authorization": f"Bearer {token[0]}"} if token else {}


def connect(url: str, token: tuple[str, str] | None) -> Any:
    """A JobSubmissionClient that has reached the dashboard (its constructor asks for the version)."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(url, headers=auth_headers(token))
    except AuthenticationError:
        raise UserInputError(_refusal(url, token)) from None
    except ConnectionError:
        raise ClusterError(
            f"cannot reach the Ray dashboard at {url}: is the cluster up and is this its dashboard address?"
        ) from None


def _refusal(url: str, token: tuple[str, str] | None) -> str:
    if token is None:
        return (
            f"{url} refused the request (HTTP 401): the cluster uses token authentication and this machine "
            "has no token; copy the head's ~/.ray/auth_token here (or set RAY_AUTH_TOKEN)"
        )
    return (
        f"{url} refused the token from {token[1]} (HTTP 403): it is not this cluster's token; "
        "use the head's ~/.ray/auth_token"
    )


# ---------------------------------------------------------------------------------------------------
# Submission
# ---------------------------------------------------------------------------------------------------


def entrypoint(name: str, storage: str) -> str:
    """The job's command, run by a shell in the uploaded working dir on the head.

    A relative local storage would land in that working dir, which Ray deletes with the session, so it
    is taken relative to the head's home instead; absolute paths are kept (the config refuses URIs:
    storage is a file system every node mounts).
    """
    under_home = _under_home(storage)
    where = shlex.quote(storage) if under_home is None else '"$HOME"/' + shlex.quote(under_home)
    run = f"python -m mmkd.cli sweep run {SWEEP_FILE} --name {shlex.quote(name)} --storage {where}"
    return run + " --address auto"


def submit(
    sweep_file: str,
    overrides: list[str],
    *,
    address: str | None,
    name: str | None = None,
    storage: str | None = None,
    follow: bool = False,
) -> int:
    """``mmkd sweep submit``: validate, submit, print the job id and how to follow it; 0/1 from the job
    with ``follow``; 1 with one line when the cluster cannot take the job."""
    sweep = config_mod.load(sweep_file, overrides)
    if name is not None:
        sweep = config_mod.from_dict({**sweep.model_dump(mode="json"), "name": name}, source="--name")
    trial_resources(sweep.resources)
    from mmkd.plan import check

    check(sweep)  # what `sweep run` on the head would refuse, refused here
    url = dashboard_url(address)
    token = find_token()
    storage = storage or sweep.storage
    try:
        client = connect(url, token)
        job_id = f"mmkd-{sweep.name}-{secrets.token_hex(3)}"
        with tempfile.TemporaryDirectory(prefix="mmkd-submit-") as workdir:
            (Path(workdir) / SWEEP_FILE).write_text(config_mod.dump(sweep))
            client.submit_job(
                entrypoint=entrypoint(sweep.name, storage),
                submission_id=job_id,
                runtime_env={"working_dir": workdir},
                metadata={"mmkd_sweep": sweep.name},
            )
    except ClusterError as e:
        print(f"mmkd: error: {e}", file=sys.stderr)
        return 1
    except (RuntimeError, OSError) as e:  # the Jobs API's HTTP errors, a dropped connection
        print(f"mmkd: error: {url} did not take the job: {_first_line(e)}", file=sys.stderr)
        return 1
    auth = "RAY_AUTH_MODE=token " if token else ""  # Ray's CLI sends the token only in token mode
    print(f"submitted sweep {sweep.name} as job {job_id}")
    print(f"  logs:      {auth}ray job logs --address {url} --follow {job_id}")
    print(f"  status:    {auth}ray job status --address {url} {job_id}")
    print(f"  stop:      {auth}ray job stop --address {url} {job_id}")
    print(f"  dashboard: {url}/#/jobs/{job_id}")
    print(f"  results:   {_shown_storage(storage)}/{sweep.name} on the head node", flush=True)
    return _follow(client, job_id, url) if follow else 0


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _under_home(storage: str) -> str | None:
    """A local relative storage (``runs``, ``./runs``, ``~/runs``) as a path under the head's home; None
    for absolute paths and URIs, which mean the same on the head."""
    if "://" in storage or Path(storage).is_absolute():
        return None
    return storage.removeprefix("~/").removeprefix("./").rstrip("/")


def _shown_storage(storage: str) -> str:
    under_home = _under_home(storage)
    return storage.rstrip("/") if under_home is None else f"~/{under_home}"


def _follow(client: Any, job_id: str, url: str) -> int:
    """Stream the job's logs until it ends; 0 when it succeeded, 1 otherwise, 130 on Ctrl-C."""
    from ray.job_submission import JobStatus

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()

    try:
        try:
            asyncio.run(tail())
        except (RuntimeError, OSError) as e:
            # The log stream can drop (dashboard restart, network); the job's status still decides.
            print(f"mmkd: log stream closed ({_first_line(e)}); waiting for the job", file=sys.stderr)
        info = client.get_job_info(job_id)
        while not info.status.is_terminal():
            time.sleep(2)
            info = client.get_job_info(job_id)
    except KeyboardInterrupt:
        print(
            f"\nmmkd: stopped following; job {job_id} keeps running (ray job stop --address {url} {job_id})",
            file=sys.stderr,
        )
        return 130
    if info.status == JobStatus.SUCCEEDED:
        print(f"mmkd: job {job_id} succeeded", file=sys.stderr)
        return 0
    reason = f": {info.message.splitlines()[0]}" if info.message else ""
    print(f"mmkd: job {job_id} {str(info.status).lower()}{reason}", file=sys.stderr)
    return 1


GCS_PORT_ENV = "RAY_GCS_SERVER_PORT"  # the GCS port a Ray node started by this process takes (0: any)


@contextmanager
def addressed_ray() -> Iterator[str]:
    """While a Ray of this process's own starts (``ray.init(address="local")``, a test's ``Cluster``):
    its GCS port chosen here and ``RAY_ADDRESS`` naming it, so that every process of that Ray knows its
    own cluster; yields the address. The variables are restored afterwards (Ray's processes keep theirs).

    Why: Ray's state API called without an address inside a Ray process connects to the newest cluster
    on the machine (``/tmp/ray/ray_current_cluster``), not its own. Ray Train V2's placement-group
    cleaner asks it whether the run's controller is alive; with another Ray on the machine it finds no
    such actor there and removes the run's placement group, killing its workers mid-run."""
    import ray

    with socket.socket() as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    address = f"{ray.util.get_node_ip_address()}:{port}"
    saved = {k: os.environ.get(k) for k in (GCS_PORT_ENV, "RAY_ADDRESS")}
    os.environ.update({GCS_PORT_ENV: str(port), "RAY_ADDRESS": address})
    try:
        yield address
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
