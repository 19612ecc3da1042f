"""A trial as a Ray Train run of workers (gloo on CPU): two workers, under ddp or fsdp, follow one
worker's loss."""

import json
import math
import sys

import pytest
import torch
from ray import cloudpickle
from ray.train import UserCallback
from transformers import ByT5Tokenizer, T5ForConditionalGeneration

from mmkd import reporting
from mmkd.config import Artefacts, load
from mmkd.models import get_family
from mmkd.models.zoo import tiny_config
from mmkd.sweep import train_run

pytestmark = pytest.mark.integration

# Two workers average per-shard token means where one worker takes the mean over the whole batch's
# tokens (shards differ in their numbers of target tokens), so the trajectories differ a little: the
# stated tolerance, relative, on every reported loss.
TOLERANCE = 0.02


class Recorder(UserCallback):
    """A Train callback that appends rank 0's reports to a file (it runs in Train's controller)."""

    def __init__(self, path):
        self.path = str(path)

    def after_report(self, run_context, metrics, checkpoint):
        with open(self.path, "a") as f:
            f.write(json.dumps(metrics[0]) + "\n")


@pytest.fixture(scope="module")
def ray_cpus():
    import ray

    from mmkd.sweep.cluster import addressed_ray

    with addressed_ray():  # Train's processes must not ask another Ray on the machine (see there)
        ray.init(address="local", num_cpus=3, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    for size in ("s", "xs"):
        T5ForConditionalGeneration(tiny_config(size)).save_pretrained(root / size)
        ByT5Tokenizer().save_pretrained(root / size)
    return root


TOKEN_LEVEL_ONLY = ["distill.parallel=false", "distill.word=0", "distill.sentence=0", "distill.structure=0"]


def _trial(tmp_path, tiny_models, workers, callbacks, levels=TOKEN_LEVEL_ONLY, strategy="ddp"):
    overrides = ["task.n_train=32", "task.n_dev=2", "task.languages=[te]", "search.teacher=[s]",
                 "search.student=[xs]", "train.max_steps=6", "train.eval_every=2", "train.batch_size=8",
                 "train.warmup_steps=1", "eval.max_new_tokens=4", "distill.cache=false", *levels,
                 "stop.wlr=null", f"resources.workers={workers}", f"resources.strategy={strategy}",
                 f"storage={tmp_path}"]  # fmt: skip
    sweep = load("quickstart", overrides)
    family = get_family("tiny")
    config = {
        "lr": 3e-3,
        "adapter_rank": 0,
        "teacher": "s",
        "student": "xs",
        "teacher_params": family.size("s").params,
        "student_params": family.size("xs").params,
        "ratio": family.ratio("s", "xs"),
    }
    artefacts = Artefacts(models={"xs": str(tiny_models / "xs")}, teachers={"s": str(tiny_models / "s")})
    folder = f"xs-s-w{workers}-{strategy}"
    trainer = train_run.trainer(config, sweep, artefacts, folder, callbacks)
    return trainer, tmp_path / "quickstart" / folder


def test_two_workers_follow_one_workers_loss(tmp_path, tiny_models, ray_cpus):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the recorder runs in Ray's processes
    reports = {}
    for workers, strategy in ((1, "ddp"), (2, "ddp"), (2, "fsdp")):
        log = tmp_path / f"w{workers}-{strategy}.jsonl"
        trainer, folder = _trial(tmp_path, tiny_models, workers, [Recorder(log)], strategy=strategy)
        trainer.fit()
        sent = [json.loads(line) for line in log.read_text().splitlines()]
        # what rank 0 reported to Tune, joined with what it set aside for each step
        reports[workers, strategy] = [{**r, **reporting.read_set_aside(folder, r["step"])} for r in sent]
        assert sorted(p.name for p in (folder / "mmkd_examples").glob("*.jsonl")) == [
            "000002.jsonl", "000004.jsonl", "000006.jsonl"
        ]  # fmt: skip
    one = reports[1, "ddp"]
    assert [r["step"] for r in one] == [2, 4, 6]
    assert one[-1]["train/loss"] < one[0]["train/loss"]  # it trained
    for (workers, strategy), two in reports.items():
        assert [r["step"] for r in two] == [2, 4, 6]
        assert {(r["workers"], r["strategy"]) for r in two} == {(workers, strategy)}
        for a, b in zip(one, two, strict=True):
            for key in ("train/loss", "train/loss_task", "train/loss_token"):
                assert b[key] == pytest.approx(a[key], rel=TOLERANCE), (
                    strategy,
                    a["step"],
                    key,
                    a[key],
                    b[key],
                )


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_workers_train_every_mmkd_level_with_their_heads(tmp_path, tiny_models, ray_cpus, strategy):
    """The encoder-side levels call the MMKD heads' parts, which a DDP wrapper hides (the heads stay
    replicated outside DDP and FSDP). The contrastive levels see each worker's share of the batch, so only
    the run and its terms are checked here (tests/test_sharding.py compares fsdp with ddp on every level)."""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    log = tmp_path / "all-levels.jsonl"
    levels = ["distill.parallel=true"]
    trainer, folder = _trial(tmp_path, tiny_models, 2, [Recorder(log)], levels=levels, strategy=strategy)
    trainer.fit()
    sent = [json.loads(line) for line in log.read_text().splitlines()]
    reports = [{**r, **reporting.read_set_aside(folder, r["step"])} for r in sent]
    assert [r["step"] for r in reports] == [2, 4, 6]
    assert {r["strategy"] for r in reports} == {strategy}
    for level in ("word", "sentence", "structure"):
        assert all(math.isfinite(r[f"train/loss_{level}"]) and r[f"train/loss_{level}"] != 0 for r in reports)


def test_the_processes_of_an_own_ray_know_its_address(ray_cpus):
    """Train's placement-group cleaner asks Ray's state API, which without RAY_ADDRESS asks the newest
    Ray on the machine (mmkd.sweep.cluster.addressed_ray)."""
    import os

    import ray

    @ray.remote(num_cpus=0)
    def addresses():
        return os.environ.get("RAY_ADDRESS"), ray.get_runtime_context().gcs_address

    seen, own = ray.get(addresses.remote())
    assert seen == own
    assert "RAY_GCS_SERVER_PORT" not in os.environ  # restored in this process once Ray had started


def _teacher_sweep(tmp_path, workers, strategy="auto"):
    # the trials stay in their actors (resources.workers 0): only the teacher runs on workers
    overrides = ["task.n_train=32", "task.n_dev=2", "task.languages=[te]", "search.teacher=[s]",
                 "search.student=[xs]", "teacher.steps=6", "teacher.checkpoint_every=3",
                 "teacher.batch_size=8", "eval.max_new_tokens=4", f"teacher.workers={workers}",
                 f"resources.strategy={strategy}", f"storage={tmp_path}"]  # fmt: skip
    return load("quickstart", overrides)


def test_a_teacher_finetunes_on_two_workers_as_in_one_process_and_resumes(tmp_path, tiny_models, ray_cpus):
    from transformers import AutoModelForSeq2SeqLM

    from mmkd.distill import teacher

    base = str(tiny_models / "s")
    one = teacher.finetune(base, _teacher_sweep(tmp_path / "a", 0), tmp_path / "one", size="s", name="s-t")
    two = teacher.finetune(base, _teacher_sweep(tmp_path / "b", 2), tmp_path / "two", size="s", name="s-t")
    assert one["resumed_from"] == two["resumed_from"] == ""
    assert two["workers"] == 2 and two["final_loss"] == pytest.approx(one["final_loss"], rel=TOLERANCE)
    # rank 0 evaluated the teacher on its device and the result came with the weights
    assert len(list((tmp_path / "two").glob("mmkd_eval-*.json"))) == 1
    # Started again (a driver killed after the run, before the copy), the run resumes at its last step
    # from Train's checkpoint and hands over the same weights without training.
    again = teacher.finetune(
        base, _teacher_sweep(tmp_path / "b", 2), tmp_path / "again", size="s", name="s-t"
    )
    assert again["resumed_from"].startswith("checkpoint_") and again["resumed_from"].endswith("(step 6)")
    assert math.isnan(again["final_loss"])
    a, b = (AutoModelForSeq2SeqLM.from_pretrained(tmp_path / d).state_dict() for d in ("two", "again"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_teacher_finetunes_sharded_on_two_workers_as_in_one_process(tmp_path, tiny_models, ray_cpus):
    """Under fsdp rank 0's saves (the model, the last checkpoint) gather the weights from every worker."""
    from transformers import AutoModelForSeq2SeqLM

    from mmkd.distill import teacher

    base = str(tiny_models / "s")
    one = teacher.finetune(base, _teacher_sweep(tmp_path / "a", 0), tmp_path / "one", size="s", name="s-t")
    sweep = _teacher_sweep(tmp_path / "b", 2, "fsdp")
    two = teacher.finetune(base, sweep, tmp_path / "two", size="s", name="s-t")
    assert two["workers"] == 2 and two["final_loss"] == pytest.approx(one["final_loss"], rel=TOLERANCE)
    assert len(list((tmp_path / "two").glob("mmkd_eval-*.json"))) == 1
    start, a, b = (
        AutoModelForSeq2SeqLM.from_pretrained(d).state_dict()
        for d in (base, *(tmp_path / n for n in ("one", "two")))
    )
    assert a.keys() == b.keys() == start.keys()
    assert not all(torch.equal(start[k], b[k]) for k in b)  # the whole model, trained, not rank 0's shard
