"""The trial recipe end to end without Ray: on a generative-QA task its reports carry the task metric and
the language-adaptive pretraining stage runs on the task's target-language contexts; a trial resumed from
its checkpoint goes on exactly as the uninterrupted one."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import ByT5Tokenizer, T5ForConditionalGeneration

from mmkd import checkpoint, reporting
from mmkd.config import Artefacts, TrialConfig, load
from mmkd.models import get_family
from mmkd.models.zoo import tiny_config
from mmkd.trial import CHECKPOINT_DIR, EXAMPLES_DIR, LocalSession, run, run_local

pytestmark = pytest.mark.integration

# TyDiQA-GoldP in the hub's schema: English training questions, Swahili and Telugu dev questions.
LANGS = {"english": "en", "swahili": "sw", "telugu": "te"}
QUESTIONS = {
    "en": ("What is the capital of {c}?", "The capital of {c} is {x}."),
    "sw": ("Mji mkuu wa {c} ni upi?", "Mji mkuu wa {c} ni {x}."),
    "te": ("{c} రాజధాని ఏది?", "{c} రాజధాని {x}."),
}
CITIES = [
    ("Paris", "France"),
    ("Nairobi", "Kenya"),
    ("Lima", "Peru"),
    ("Oslo", "Norway"),
    ("Dodoma", "Tanzania"),
]


def _rows(name, n):
    question, context = QUESTIONS[LANGS[name]]
    rows = []
    for i in range(n):
        x, c = CITIES[i % len(CITIES)]
        ctx = context.format(c=c, x=x)
        answers = {"text": [x], "answer_start": [ctx.index(x)]}
        rows.append(
            {
                "id": f"{name}-{i}-0",
                "title": "",
                "context": ctx,
                "question": question.format(c=c),
                "answers": answers,
            }
        )
    return rows


def test_a_trial_on_generative_qa_with_lapt_reports_f1_em_and_scores_zero_shot_f1(tmp_path, monkeypatch):
    monkeypatch.setenv("MMKD_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data" / "tydiqa"
    data.mkdir(parents=True)
    for split, rows in {
        "train": _rows("english", 20),
        "validation": _rows("english", 30) + _rows("swahili", 30) + _rows("telugu", 30),
    }.items():
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    overrides = [
        "task.name=xtreme_r/tydiqa",
        f"task.data_dir={tmp_path / 'data'}",
        "task.languages=[sw, te]",
        "task.n_train=20",
        "task.n_dev=3",
        "family.zoo.steps=4",
        "family.zoo.batch_size=4",
        "family.zoo.corpus_lines=20",
        "teacher.steps=4",
        "teacher.batch_size=4",
        "teacher.aux_translation=0",  # TyDiQA translates no training record: no pairs to draw
        "search.aux_translation=null",
        "search.teacher=[s]",
        "search.student=[xs]",
        "train.max_steps=2",
        "train.eval_every=2",
        "train.batch_size=4",
        "eval.max_new_tokens=8",
        "stop.wlr=null",
        "train.lapt={steps: 2, batch_size: 4}",
    ]
    report = run_local("quickstart", overrides, tmp_path / "trial", lr=1e-3, rank=0)
    for key in ("eval/sw/f1", "eval/sw/em", "eval/te/f1", "eval/en/f1", "eval/zero_shot/f1",
                "eval/low_resource/f1", "eval/source/f1", "eval/sw/chrf", "eval/zero_shot/chrf"):  # fmt: skip
        assert 0 <= report[key] <= 100, key
    assert {"eval/sw/wlr", "eval/low_resource/wlr", "eval/te/src_rate"} <= set(report)
    assert report["eval/score"] == report["eval/zero_shot/f1"]
    assert report["eval/zero_shot/f1"] == pytest.approx((report["eval/sw/f1"] + report["eval/te/f1"]) / 2)
    assert report["lapt_steps"] == 2 and report["lapt/loss_start"] > 0
    rows = [
        json.loads(line)
        for line in (tmp_path / "trial" / EXAMPLES_DIR / "000002.jsonl").read_text().splitlines()
    ]
    assert {r["lang"] for r in rows} == {"en", "sw", "te"} and len(rows) == 9
    assert all({"f1", "em", "chrf", "verdict"} <= set(r) for r in rows)


class _Interrupted(Exception):
    pass


class _StopsAtTheFirstCheckpoint(LocalSession):
    """A trial killed right after its first checkpoint reached the storage."""

    def report(self, metrics, folder):
        super().report(metrics, folder)
        if folder is not None:
            raise _Interrupted


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """An untrained teacher and a student with dropout (so resuming needs the random generators), built
    offline."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    for size, dropout in (("s", 0.0), ("xs", 0.2)):
        config = tiny_config(size)
        config.dropout_rate = dropout
        T5ForConditionalGeneration(config).save_pretrained(root / size)
        ByT5Tokenizer().save_pretrained(root / size)
    return root


def test_a_trial_resumed_from_its_checkpoint_matches_the_uninterrupted_run(tmp_path, tiny_models):
    overrides = ["task.n_train=16", "task.n_dev=2", "task.languages=[te]", "search.teacher=[s]",
                 "search.student=[xs]", "train.max_steps=4", "train.eval_every=2", "train.batch_size=8",
                 "train.aux_translation=0.5", "train.grad_accum=2", "train.warmup_steps=1",
                 "eval.max_new_tokens=4", "distill.cache=false", "stop.wlr=null"]  # fmt: skip
    sweep = load("quickstart", overrides)
    family = get_family("tiny")
    searched = {
        "lr": 3e-3,
        "adapter_rank": 0,
        "teacher": "s",
        "student": "xs",
        "teacher_params": family.size("s").params,
        "student_params": family.size("xs").params,
        "ratio": family.ratio("s", "xs"),
    }
    artefacts = Artefacts(models={"xs": str(tiny_models / "xs")}, teachers={"s": str(tiny_models / "s")})
    config = TrialConfig.build(searched, sweep, artefacts)
    run(config, LocalSession(tmp_path / "whole"))
    with pytest.raises(_Interrupted):
        run(config, _StopsAtTheFirstCheckpoint(tmp_path / "resumed"))
    run(config, LocalSession(tmp_path / "resumed"))

    def reports(name):  # what went to the session, joined with what was set aside for each step
        lines = [json.loads(line) for line in (tmp_path / name / "result.jsonl").read_text().splitlines()]
        joined = [{**r, **reporting.read_set_aside(tmp_path / name, r["step"])} for r in lines]
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in joined]

    whole, resumed = reports("whole"), reports("resumed")
    assert [r["step"] for r in resumed] == [2, 4]  # resumed at step 2, not restarted
    # Where each run started is the one thing that differs: said in its reports.
    assert whole[1].pop("resumed_from") == "" and resumed[1].pop("resumed_from").endswith("(step 2)")
    assert whole == resumed
    assert whole[1]["train/loss_word"] != whole[0]["train/loss_word"]  # it trained: not a constant

    def weights(name):
        return load_file(str(tmp_path / name / CHECKPOINT_DIR / checkpoint.MODEL_FILE))

    a, b = weights("whole"), weights("resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
