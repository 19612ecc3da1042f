"""cluster.yaml is valid for Ray's own autoscaler, offline, and keeps the settings the README promises."""

from pathlib import Path

import yaml

CLUSTER = Path(__file__).resolve().parent.parent / "cluster.yaml"


def test_cluster_yaml_passes_rays_autoscaler_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(CLUSTER.read_text())
    validate_config(prepare_config(config))  # raises on any schema violation


def test_cluster_has_gpu_workers_on_spot_token_auth_and_a_private_dashboard():
    config = yaml.safe_load(CLUSTER.read_text())
    nodes = config["available_node_types"]
    head = nodes[config["head_node_type"]]
    assert "GPU" not in head["resources"]
    gpus = [n for n in nodes.values() if n["resources"].get("GPU", 0) > 0]
    assert {n["resources"]["GPU"] for n in gpus} >= {1, 8}
    assert all(n["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot" for n in gpus)
    start = " ".join(config["head_start_ray_commands"] + config["worker_start_ray_commands"])
    assert start.count("RAY_AUTH_MODE=token") == 2
    assert "--dashboard-host=127.0.0.1" in start
    assert "~/.ray/auth_token" in config["file_mounts"]
