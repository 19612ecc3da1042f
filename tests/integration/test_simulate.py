"""Scale simulation on a small simulated GPU fleet: real Ray Tune, Optuna, WLR stopping and storage."""

import json

import pandas as pd
import pytest

from .micro import command, env

pytestmark = pytest.mark.integration

NODES, GPUS_PER_NODE, TRIALS, MAX_STEPS = 2, 4, 16, 240

SIM = [
    "--simulate",
    *("--set", f"search.num_samples={TRIALS}"),
    *("--set", "search.adapter_rank=[0, 4, 16]"),
    # Its own range, careful to reckless, so some trials drift whatever the quickstart searches.
    *("--set", "search.lr={low: 1.0e-4, high: 1.0e-2}"),
    *("--set", "resources={cpu: 1, gpu: 1}"),
    *("--set", f"train.max_steps={MAX_STEPS}"),
    *("--set", "train.eval_every=40"),
    # Trials of ~8 s, long against an actor's start-up (~2 s of CPU), so the fleet fills up.
    *("--set", "simulate.step_seconds=0.03"),
    *("--set", "simulate.eval_seconds=0.2"),
    *("--set", "stop.wlr={metric: eval/low_resource/wlr, threshold: 0.6, grace_evals: 1, mode: absolute}"),
]


def test_simulated_sweep_on_a_gpu_fleet(tmp_path):
    import subprocess

    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(NODES):
        cluster.add_node(num_cpus=GPUS_PER_NODE, num_gpus=GPUS_PER_NODE)
    cluster.wait_for_nodes()
    try:
        args = ["sweep", "run", "quickstart", "--name", "sim", "--storage", str(tmp_path)]
        done = subprocess.run(
            command(*args, "--address", cluster.address, *SIM),
            capture_output=True,
            text=True,
            env=env(tmp_path / "cache"),
            timeout=600,
        )
    finally:
        cluster.shutdown()
    assert done.returncode == 0, done.stderr[-3000:]
    exp = tmp_path / "sim"
    assert "simulate:\n  enabled: true" in (exp / "mmkd" / "config.yaml").read_text()  # kept for resume
    assert not (exp / "mmkd" / "teachers").exists()  # nothing was prepared

    df = pd.read_parquet(exp / "mmkd" / "results.parquet")
    shown = df[["trial_id", "step", "lr", "adapter_rank", "eval/low_resource/wlr", "stopped_by"]].to_string()
    assert df["trial_id"].nunique() == TRIALS, shown  # every trial reported
    assert not df.duplicated(["trial_id", "step"]).any(), shown
    last = df.sort_values("step").groupby("trial_id").tail(1)
    assert set(last["stopped_by"]) <= {"wlr", "max_steps"}, shown
    stopped = last[last["stopped_by"] == "wlr"]
    assert 0 < len(stopped) < TRIALS, shown  # reckless learning rates drift, careful ones do not
    assert (stopped["step"] < MAX_STEPS).all() and (stopped["eval/low_resource/wlr"] > 0.6).all(), shown
    assert (last.loc[last["stopped_by"] == "max_steps", "step"] == MAX_STEPS).all(), shown
    recorded = json.loads((exp / "mmkd" / "stopped_by.json").read_text())
    assert set(recorded) == set(stopped["trial_id"]) and {r["reason"] for r in recorded.values()} == {"wlr"}
    assert (exp / "mmkd" / "results.parquet").is_file()
    assert list(exp.glob("*/checkpoint_*/checkpoint/trainable.safetensors"))

    # Resources: one logical GPU per trial, never two trials on one GPU at once, and more trials at once
    # than one node has GPUs only by using both nodes.
    spans = df.groupby("trial_id").agg(
        node=("sim/node", "first"),
        gpus=("sim/gpu_ids", "first"),
        start=("sim/started", "min"),
        end=("sim/reported", "max"),
    )
    assert (spans["gpus"].astype(str).str.split(",").map(len) == 1).all(), spans
    events = sorted([(t, 1) for t in spans["start"]] + [(t, -1) for t in spans["end"]])
    running = [sum(step for _, step in events[: i + 1]) for i in range(len(events))]
    assert 2 < max(running) <= NODES * GPUS_PER_NODE, spans  # the fleet is used, never oversubscribed
    if max(running) > GPUS_PER_NODE:
        assert spans["node"].nunique() == NODES, spans
    for (_, _), group in spans.groupby(["node", "gpus"]):
        group = group.sort_values("start")
        assert (group["start"].iloc[1:].to_numpy() >= group["end"].iloc[:-1].to_numpy()).all(), group
