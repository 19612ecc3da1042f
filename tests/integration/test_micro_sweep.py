"""A real 2-trial micro-sweep through the CLI on a local Ray: metric contract and storage layout."""

import json
import socket
import subprocess
import time
import urllib.request

import optuna
import pandas as pd
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from mmkd.curves.aggregate import read_examples
from mmkd.models import get_family

from .micro import CHROMIUM, MICRO, command, mmkd, page_text
from .micro import env as offline_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return offline_env(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, env):
    storage = tmp_path_factory.mktemp("runs")
    # Checkpoints at the last step only: the per-example rows of step 3 reach the storage without one.
    once = ["--set", "train.checkpoint_every_s=3600"]
    done = mmkd(
        "sweep", "run", "quickstart", "--name", "micro", "--storage", str(storage), *MICRO, *once, env=env
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return storage / "micro", done


def test_sweep_prints_the_best_trials(sweep):
    _, done = sweep
    assert "Best trials of" in done.stdout
    assert "0-shot WLR" in done.stdout


def test_storage_layout(sweep):
    exp, _ = sweep
    assert list(exp.glob("experiment_state-*.json"))
    assert (exp / "mmkd" / "config.yaml").is_file()
    # Hidden entries are the build-once helper's lock files (mmkd.atomic), not artefacts.
    teachers = [p for p in (exp / "mmkd" / "teachers").iterdir() if not p.name.startswith(".")]
    assert len(teachers) == 1 and (teachers[0] / "model.safetensors").is_file()
    assert len(list((exp / "mmkd" / "teacher-cache").glob("teacher-cache-*.safetensors"))) == 1
    trials = [p.parent for p in exp.glob("*/result.json")]
    assert len(trials) == 2
    for trial in trials:
        # The driver's logs (mmkd.sweep.logs): Tune's, without a progress.csv to copy at every snapshot.
        logs = {p.name for p in trial.iterdir() if p.is_file()}
        assert {"result.json", "params.json", "params.pkl"} <= logs and "progress.csv" not in logs, logs
        # Short, stable folder names: <student>-<teacher>-<trial_id>.
        params = json.loads((trial / "params.json").read_text())
        reports = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        assert trial.name == f"{params['student']}-{params['teacher']}-{reports[-1]['trial_id']}"
        assert json.loads((trial / "params.json").read_text())["student"] in {"xs", "s", "m"}
        (only,) = trial.glob("checkpoint_*")
        assert (only / "checkpoint" / "trainable.safetensors").is_file()
        assert json.loads((only / "checkpoint" / "state.json").read_text())["step"] == 6
        reports = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        assert [(r["step"], r["checkpoint_dir_name"]) for r in reports] == [(3, None), (6, only.name)]
        # Per evaluation: its per-example rows, and the report's numbers Tune does not keep (mmkd.reporting).
        assert sorted(p.name for p in (trial / "mmkd_examples").iterdir()) == [
            "000003.jsonl", "000003.metrics.json", "000006.jsonl", "000006.metrics.json"
        ]  # fmt: skip
        for step in (3, 6):
            rows = [json.loads(line) for line in (trial / "mmkd_examples" / f"{step:06d}.jsonl").open()]
            assert {r["lang"] for r in rows} == {"en", "ru", "hi", "te", "ta"} and len(rows) == 15
            assert {"id", "chrf", "verdict", "label", "output"} <= set(rows[0])
            assert {r["step"] for r in rows} == {step}
            # The curves find them where the trial wrote them (writer and reader each spell the layout).
            read = read_examples(trial, step)
            assert read is not None and sorted(read["chrf"]) == sorted(r["chrf"] for r in rows)


def test_baselines_are_written_with_the_results_metric_columns(sweep):
    exp, _ = sweep
    baselines = pd.read_csv(exp / "mmkd" / "baselines.csv")
    results = pd.read_parquet(exp / "mmkd" / "results.parquet")
    assert baselines.columns[0] == "baseline"
    assert baselines["baseline"].tolist() == ["copy_input", "english_answer", "teacher:l"]
    metrics = [c for c in results.columns if c.startswith("eval/")]
    assert set(metrics) <= set(baselines.columns)
    copy, english = baselines.iloc[0], baselines.iloc[1]
    # Copying an input reproduces it: in English that is the past form, not the future asked for.
    assert 0 < copy["eval/en/chrf"] < 100
    assert english["eval/en/chrf"] == pytest.approx(100)  # the English reference of an English item
    assert english["eval/zero_shot/wlr"] > 0.5  # and in English everywhere else
    assert baselines["eval/score"].notna().all()


def test_results_table_carries_the_metric_contract(sweep):
    exp, _ = sweep
    df = pd.read_parquet(exp / "mmkd" / "results.parquet")
    assert len(df) == 4  # 2 trials x 2 evaluations
    assert not df.duplicated(["trial_id", "step"]).any()
    assert sorted(df["step"].unique()) == [3, 6]
    required = [
        "step",
        "train/loss",
        "train/loss_task",
        "train/loss_token",
        "teacher",
        "student",
        "teacher_params",
        "student_params",
        "ratio",
        "lr",
        "adapter_rank",
        "trainable_params",
        "eval/zero_shot/chrf",
        "eval/zero_shot/wlr",
        "eval/low_resource/chrf",
        "eval/low_resource/wlr",
        "eval/score",
        "stopped_by",
        "status",
    ]
    for lang in ("en", "ru", "hi", "te", "ta"):
        required += [f"eval/{lang}/chrf", f"eval/{lang}/wlr", f"eval/{lang}/src_rate"]
    assert not [c for c in required if c not in df.columns]
    # teacher_params / student_params are totals: ratio_total; ratio counts non-embedding parameters.
    assert df["ratio_total"].to_numpy() == pytest.approx(
        (df["teacher_params"] / df["student_params"]).to_numpy(), rel=1e-5
    )
    tiny = get_family("tiny")
    expected = [tiny.ratio(t, s, "non_embedding") for t, s in zip(df["teacher"], df["student"], strict=True)]
    assert df["ratio"].to_numpy() == pytest.approx(expected, rel=1e-5)
    assert (df["ratio"] > df["ratio_total"]).all() and set(df["stage"]) == {"search"}
    assert set(df["teacher"]) == {"l"} and set(df["student"]) <= {"xs", "s"}
    assert (df["status"] == "TERMINATED").all() and (df["stopped_by"] == "max_steps").all()
    full = df[df["adapter_rank"] == 0]
    assert (df["heads_params"] > 0).all()  # the quickstart's encoder-side levels train heads
    assert (full["trainable_params"] == full["student_params"] + full["heads_params"]).all()
    lora = df[df["adapter_rank"] > 0]
    assert (lora["trainable_params"] - lora["heads_params"] < lora["student_params"]).all()


def test_status_and_refusing_to_overwrite(sweep, env):
    exp, _ = sweep
    status = mmkd("sweep", "status", str(exp), env=env)
    assert status.returncode == 0 and "2/2 trials (terminated 2)" in status.stdout
    again = mmkd(
        "sweep", "run", "quickstart", "--name", "micro", "--storage", str(exp.parent), *MICRO, env=env
    )
    assert again.returncode == 2
    assert f"mmkd sweep resume {exp}" in again.stderr and again.stderr.count("\n") == 1


def test_tensorboard_has_the_live_metrics_only(sweep, read_events):
    from mmkd.sweep.telemetry import METRICS

    exp, _ = sweep
    for trial in [p.parent for p in exp.glob("*/result.json")]:
        (events,) = trial.glob("events.out.tfevents.*")
        scalars = {v.tag for e in read_events(events) for v in e.summary.value if v.HasField("simple_value")}
        tags = {t.removeprefix("ray/tune/") for t in scalars}
        assert {"eval/score", "eval/zero_shot/chrf", "train/loss"} <= tags
        # Loss terms and per-language numbers stay in mmkd_examples/<step>.metrics.json.
        assert not [t for t in tags if t not in METRICS], tags


def load_study(exp):
    storage = JournalStorage(JournalFileBackend(str(exp / "mmkd" / "optuna.journal")))
    return optuna.load_study(study_name=exp.name, storage=storage)


def test_the_optuna_study_holds_each_trial_with_its_value_and_attributes(sweep):
    exp, _ = sweep
    df = pd.read_parquet(exp / "mmkd" / "results.parquet")
    last = df.sort_values("step").groupby("trial_id").tail(1).set_index("trial_id")
    study = load_study(exp)
    trials = {t.user_attrs["trial_id"]: t for t in study.trials}
    assert len(study.trials) == 2 and set(trials) == set(last.index)
    for trial_id, trial in trials.items():
        row = last.loc[trial_id]
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.value == pytest.approx(row["eval/score"])
        assert trial.params["lr"] == pytest.approx(row["lr"])
        attrs = trial.user_attrs
        assert (attrs["teacher"], attrs["student"]) == (row["teacher"], row["student"])
        assert attrs["ratio"] == pytest.approx(row["ratio"])
        assert (attrs["stage"], attrs["stopped_by"]) == ("search", "max_steps")


def test_mmkd_sweep_dashboard_serves_the_study(sweep, env):
    exp, _ = sweep
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        command("sweep", "dashboard", str(exp), "--port", str(port)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        studies = _poll_json(f"{url}/api/studies", proc, seconds=180)["study_summaries"]
        assert [(s["study_name"], s["directions"]) for s in studies] == [("micro", ["maximize"])]
        if not CHROMIUM.exists():
            pytest.skip(f"{CHROMIUM} is not installed")
        text = page_text(f"{url}/dashboard/studies/{studies[0]['study_id']}/trials")
        assert "micro" in text and "2 Trials" in text, text[:2000]
        first = load_study(exp).trials[0]
        assert f"trial_id {first.user_attrs['trial_id']}" in text  # the selected trial's user attributes
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _poll_json(url, proc, seconds):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            with opener.open(url, timeout=10) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(1)
    pytest.fail(f"nothing answered at {url} within {seconds} s")


def test_a_multi_objective_sweep_writes_its_pareto_front(tmp_path, env):
    # The tiny models' WLR is NaN (nothing determined), which Optuna counts as a failed trial: objectives
    # every micro trial reports.
    objectives = ["--set", "search.objectives={eval/score: max, train/loss: min}"]
    done = mmkd(
        "sweep",
        "run",
        "quickstart",
        "--name",
        "pareto",
        "--storage",
        str(tmp_path),
        *MICRO,
        *objectives,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    exp = tmp_path / "pareto"
    study = load_study(exp)
    assert len(study.directions) == 2 and all(len(t.values) == 2 for t in study.trials)
    assert mmkd("curves", str(exp), env=env).returncode == 0
    front = pd.read_csv(exp / "mmkd" / "curves" / "pareto.csv", dtype={"trial_id": str})
    assert 1 <= len(front) <= 2 and set(front["trial_id"]) <= {t.user_attrs["trial_id"] for t in study.trials}
    assert (exp / "mmkd" / "curves" / "pareto.png").is_file()
    assert "## Pareto front" in (exp / "mmkd" / "curves" / "report.md").read_text()
