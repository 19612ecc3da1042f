"""`mmkd sweep submit` without a cluster: addresses, tokens, the job's command, input checked before any
request, and trial resources as placement groups."""

import pytest

from mmkd.cli import main
from mmkd.config import ResourcesConfig
from mmkd.errors import UserInputError
from mmkd.sweep import cluster


@pytest.fixture(autouse=True)
def no_ray_env(monkeypatch, tmp_path):
    """No address or token from the developer's machine leaks into these tests."""
    for var in ("RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("head", "http://head:8265"),
        ("10.0.0.5:9000", "http://10.0.0.5:9000"),
        ("http://head:8265/", "http://head:8265"),
        ("https://ray.example.org/cluster/", "https://ray.example.org/cluster"),
        ("  http://127.0.0.1:8265  ", "http://127.0.0.1:8265"),
    ],
)
def test_dashboard_addresses(given, url):
    assert cluster.dashboard_url(given) == url


@pytest.mark.parametrize(
    ("given", "says"),
    [
        (None, "--address: required"),
        ("auto", "mmkd sweep run"),
        ("ray://head:10001", "http://head:8265"),
        ("head:6379", "GCS port"),
        ("head:http", "port is not a number"),
        ("ftp://head", "expected http://HOST:PORT"),
    ],
)
def test_addresses_that_are_not_a_dashboard_name_the_one_to_use(given, says):
    with pytest.raises(UserInputError, match=says):
        cluster.dashboard_url(given)


def test_address_falls_back_to_rays_environment_variable(monkeypatch):
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://head:8265")
    assert cluster.dashboard_url(None) == "http://head:8265"


def test_token_is_looked_up_in_rays_order(monkeypatch, tmp_path):
    assert cluster.find_token() is None and cluster.auth_headers(None) == {}
    default = tmp_path / "home" / ".ray" / "auth_token"
    default.parent.mkdir(parents=True)
    default.write_text("from-home\n")
    assert cluster.find_token() == ("from-home", str(default))
    named = tmp_path / "token"
    named.write_text("from-path")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(named))
    assert cluster.find_token() == ("from-path", str(named))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert cluster.find_token() == ("from-env", "RAY_AUTH_TOKEN")
    assert cluster.auth_headers(cluster.find_token()) == {"authorization": "Bearer from-env"}


def test_a_named_token_file_that_cannot_be_read_is_an_error_not_a_fallback(monkeypatch, tmp_path):
    (tmp_path / "home" / ".ray").mkdir(parents=True)
    (tmp_path / "home" / ".ray" / "auth_token").write_text("from-home")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(UserInputError, match=r"RAY_AUTH_TOKEN_PATH=.*cannot read"):
        cluster.find_token()
    (tmp_path / "empty").write_text("\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "empty"))
    with pytest.raises(UserInputError, match="empty"):
        cluster.find_token()


def test_the_job_command_keeps_relative_storage_out_of_the_temporary_working_dir():
    assert cluster.entrypoint("qs", "runs") == (
        'python -m mmkd.cli sweep run sweep.yaml --name qs --storage "$HOME"/runs --address auto'
    )
    assert "--storage /data/runs " in cluster.entrypoint("qs", "/data/runs")
    assert "--storage s3://bucket/mmkd-runs " in cluster.entrypoint("qs", "s3://bucket/mmkd-runs")
    assert "--storage \"$HOME\"/'my runs' " in cluster.entrypoint("qs", "my runs")
    assert '--storage "$HOME"/runs ' in cluster.entrypoint("qs", "~/runs/")


@pytest.fixture
def no_cluster(monkeypatch):
    """Fails the test if anything tries to reach a cluster."""

    def refuse(*args, **kwargs):
        raise AssertionError("a request was made")

    monkeypatch.setattr("ray.job_submission.JobSubmissionClient", refuse)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--set", "train.max_steps=0"], "train.max_steps"),
        (["--set", "resources.gpu=1.5"], "resources.gpu: above 1 it must be a whole number"),
        (["--name", "a/b"], "name"),
        (["--address", "ray://head:10001"], "Ray Client address"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_is_submitted(no_cluster, capsys, args, says):
    argv = ["sweep", "submit", "quickstart", *args]
    if "--address" not in args:
        argv += ["--address", "http://127.0.0.1:8265"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def test_trials_ask_for_one_bundle_with_all_their_cpus_and_gpus():
    assert cluster.trial_resources(ResourcesConfig(cpu=2)).bundles == [{"CPU": 2.0}]
    assert cluster.trial_resources(ResourcesConfig(cpu=1, gpu=0.25)).bundles == [{"CPU": 1.0, "GPU": 0.25}]
    multi = cluster.trial_resources(ResourcesConfig(cpu=8, gpu=4))
    assert multi.bundles == [{"CPU": 8.0, "GPU": 4.0}]
    assert multi.required_resources == {"CPU": 8.0, "GPU": 4.0}


def test_preparation_gets_one_whole_gpu_whenever_trials_use_gpus():
    assert cluster.prepare_resources(ResourcesConfig(cpu=2)) == {"num_cpus": 2.0, "num_gpus": 0.0}
    assert cluster.prepare_resources(ResourcesConfig(cpu=1, gpu=0.25))["num_gpus"] == 1.0
    assert cluster.prepare_resources(ResourcesConfig(cpu=8, gpu=4))["num_gpus"] == 1.0
