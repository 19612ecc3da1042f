"""The trial recipe end to end without Ray, on a generative-QA task: its reports carry the task metric,
and the language-adaptive pretraining stage runs on the task's target-language contexts."""

import json

import pytest

from mmkd.trial import EXAMPLES_DIR, run_local

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
