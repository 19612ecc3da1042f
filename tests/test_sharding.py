"""``resources.strategy: fsdp`` on CPU (gloo): two ranks launched by torchrun run the recipe as Ray Train's
workers do (tests/sharded_worker.py; the Ray path itself: tests/sweep/test_train_run.py). Each rank holds
half the student; the sharded trial follows the ddp trial; its checkpoint holds full tensors that resume
it (sharded or under ddp) and evaluate in one process to the scores it reported."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import ByT5Tokenizer, T5ForConditionalGeneration

from mmkd import checkpoint, reporting
from mmkd.config import Artefacts, TrialConfig, load
from mmkd.data import get_task
from mmkd.eval.evaluate import evaluate_model
from mmkd.eval.langid import get_langid
from mmkd.models import get_family, load_seq2seq, wrap_student
from mmkd.models.zoo import tiny_config
from mmkd.trial import CHECKPOINT_DIR, LocalSession, run

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("sharded_worker.py")
# Every MMKD level on (word, sentence, structure with their heads; parallel input), a LoRA student.
OVERRIDES = ["task.n_train=32", "task.n_dev=4", "task.languages=[te]", "search.teacher=[s]",
             "search.student=[xs]", "train.max_steps=4", "train.eval_every=2", "train.batch_size=8",
             "train.warmup_steps=1", "train.checkpoint_every_s=0", "eval.max_new_tokens=6",
             "distill.cache=false", "distill.parallel=true", "stop.wlr=null"]  # fmt: skip
# fsdp and ddp compute the same shards' losses and average the same gradients; they differ in the order
# of floating-point reductions only.
CLOSE = 1e-4
TOLERANCE = 0.02  # one process against two (tests/sweep/test_train_run.py says why)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """An untrained teacher, and a student whose untrained greedy outputs are printable ASCII (not the
    padding an untrained tiny T5 emits): the evaluations compared below score real text."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    for size in ("s", "xs"):
        model = T5ForConditionalGeneration(tiny_config(size))
        if size == "xs":
            with torch.no_grad():  # tied embeddings: specials, control bytes and non-ASCII bytes score 0
                model.shared.weight.normal_(0, 1.0)
                model.shared.weight[:35] = 0
                model.shared.weight[131:] = 0
        model.save_pretrained(root / size)
        ByT5Tokenizer().save_pretrained(root / size)
    return root


def test_the_units_are_the_transformer_blocks_of_a_plain_and_a_lora_student():
    from mmkd import sharding

    model = T5ForConditionalGeneration(tiny_config("m"))
    expected = [*model.encoder.block, *model.decoder.block]
    assert sharding.blocks(model) == expected and len(expected) == 6
    lora = wrap_student(model, 4, get_family("tiny").lora_targets)
    assert sharding.blocks(lora) == expected  # the same modules inside peft's wrapper


def _launch(out: Path, models: Path, strategy: str, stop_at: int | None = None) -> list[dict]:
    """One trial on two torchrun ranks; returns each rank's record (its losses and its share)."""
    out.mkdir(parents=True, exist_ok=True)
    spec = out.parent / f"{out.name}.spec.json"
    spec.write_text(
        json.dumps(
            {
                "out": str(out),
                "models": str(models),
                "strategy": strategy,
                "overrides": OVERRIDES,
                "stop_at": stop_at,
                "stage": "confirm",  # the last report adds the test split
            }
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run([*command, str(WORKER), str(spec)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def _reports(folder: Path) -> list[dict]:
    """Rank 0's reports, joined with what it set aside for each step, without timings."""
    lines = [json.loads(line) for line in (folder / "result.jsonl").read_text().splitlines()]
    joined = [{**r, **reporting.read_set_aside(folder, r["step"])} for r in lines]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in joined]


@pytest.fixture(scope="module")
def runs(tiny_models, tmp_path_factory):
    """ddp and fsdp to the end; fsdp stopped after its step-2 checkpoint, then resumed under fsdp and,
    from a copy of that checkpoint, under ddp."""
    root = tmp_path_factory.mktemp("runs")
    records = {s: _launch(root / s, tiny_models, s) for s in ("ddp", "fsdp")}
    _launch(root / "stopped", tiny_models, "fsdp", stop_at=2)
    shutil.copytree(root / "stopped", root / "ddp-resumed")
    shutil.copytree(root / "stopped", root / "one-process")
    records["fsdp-resumed"] = _launch(root / "stopped", tiny_models, "fsdp")
    records["ddp-resumed"] = _launch(root / "ddp-resumed", tiny_models, "ddp")
    return root, records


def test_each_rank_holds_half_the_student_and_the_fsdp_trial_follows_the_ddp_one(runs):
    root, records = runs
    ddp, fsdp = records["ddp"], records["fsdp"]
    assert all(r["held"] == r["total"] for r in ddp)  # a whole replica each
    total = fsdp[0]["total"]
    assert sum(r["held"] for r in fsdp) == total
    assert all(0.45 * total <= r["held"] <= 0.55 * total for r in fsdp)
    for a, b in zip(ddp, fsdp, strict=True):  # each rank's loss on its shard, step by step
        assert [s for s, _ in a["losses"]] == [s for s, _ in b["losses"]] == [1, 2, 3, 4]
        assert [v for _, v in b["losses"]] == pytest.approx([v for _, v in a["losses"]], rel=CLOSE)
    one, two = _reports(root / "ddp"), _reports(root / "fsdp")
    assert [r["strategy"] for r in one + two] == ["ddp"] * 2 + ["fsdp"] * 2
    for a, b in zip(one, two, strict=True):
        for level in ("task", "token", "word", "sentence", "structure"):
            assert b[f"train/loss_{level}"] == pytest.approx(a[f"train/loss_{level}"], rel=CLOSE)


def test_an_fsdp_checkpoint_resumes_under_fsdp_and_under_ddp(runs):
    root, records = runs
    whole = [v for _, v in records["fsdp"][0]["losses"]]
    for name in ("fsdp-resumed", "ddp-resumed"):
        resumed = records[name][0]["losses"]
        assert [s for s, _ in resumed] == [3, 4], name  # from step 2's checkpoint, not from scratch
        assert [v for _, v in resumed] == pytest.approx(whole[2:], rel=CLOSE), name
    reports = _reports(root / "stopped")
    assert [r["step"] for r in reports] == [2, 4] and reports[1]["resumed_from"].endswith("(step 2)")


def test_an_fsdp_checkpoint_resumes_in_one_process(runs, tiny_models):
    """The same checkpoint resumed by ``mmkd trial run``'s path: one process, no process group, the whole
    batch in one piece — its losses follow the sharded run's within the tolerance of one worker against
    two (tests/sweep/test_train_run.py), but for the in-batch levels (word InfoNCE, structure), which
    compare a worker's examples with its own share only."""
    root, _ = runs
    family = get_family("tiny")
    searched = {"lr": 3e-3, "adapter_rank": 4, "teacher": "s", "student": "xs",
                "teacher_params": family.size("s").params, "student_params": family.size("xs").params,
                "ratio": family.ratio("s", "xs")}  # fmt: skip
    artefacts = Artefacts(models={"xs": str(tiny_models / "xs")}, teachers={"s": str(tiny_models / "s")})
    run(
        TrialConfig.build(searched, load("quickstart", OVERRIDES), artefacts),
        LocalSession(root / "one-process"),
    )
    one, sharded = _reports(root / "one-process"), _reports(root / "fsdp")
    assert [r["step"] for r in one] == [2, 4] and one[1]["resumed_from"].endswith("(step 2)")
    assert (one[1]["workers"], one[1]["strategy"]) == (0, "in-actor")
    for level in ("task", "token", "sentence"):
        key = f"train/loss_{level}"
        assert one[1][key] == pytest.approx(sharded[1][key], rel=TOLERANCE), key


@pytest.mark.parametrize("split", ["dev", "test"])
def test_the_sharded_evaluation_scores_as_one_process_evaluating_its_checkpoint(runs, tiny_models, split):
    """Rank 0's report at the last step (every rank generated in lockstep; a confirm trial's last report
    adds the test split) against the same weights, restored from the fsdp run's full-tensor checkpoint
    into an unsharded student, evaluated the way a ddp run's rank 0 evaluates (one process,
    ``evaluate_model``)."""
    root, _ = runs
    sweep = load("quickstart", OVERRIDES)
    base, tokenizer = load_seq2seq(str(tiny_models / "xs"))
    student = wrap_student(base, 4, get_family("tiny").lora_targets)
    checkpoint.load_weights(root / "fsdp" / CHECKPOINT_DIR, {"student": student})
    task = get_task(sweep.task.name, **sweep.task_options())
    examples = {lang: task.examples(split, lang) for lang in task.languages}
    evaluation = evaluate_model(student, tokenizer, task, examples, sweep, get_langid(sweep.eval.langid))
    reported = _reports(root / "fsdp")[-1]
    assert reported["step"] == 4
    name = "000004.jsonl" if split == "dev" else "test-000004.jsonl"
    rows = [json.loads(line) for line in (root / "fsdp" / "mmkd_examples" / name).read_text().splitlines()]
    assert [r["output"] for r in rows] == [r["output"] for r in evaluation.examples]
    assert any(r["output"] for r in rows)  # real outputs, not empty ones
    for key, value in evaluation.metrics.items():
        key = key if split == "dev" else f"test/{key.removeprefix('eval/')}"
        assert reported[key] == pytest.approx(value, nan_ok=True), key
