"""A trial on a real task (TyDiQA-GoldP in the hub's schema) with FLORES-200 pairs (``facebook/flores``'s
schema) as its parallel source: the encoder-side levels train on them, and the sweep's teacher cache — the
training examples, then the corpus's English sentences — gives the losses of running the teacher."""

import json

import pytest
import torch
from transformers import ByT5Tokenizer, T5ForConditionalGeneration

from mmkd.config import Artefacts, TrialConfig, load
from mmkd.distill.cache import ensure_cache
from mmkd.models import get_family
from mmkd.models.zoo import tiny_config
from mmkd.trial import LocalSession, run

pytestmark = pytest.mark.integration

QUESTIONS = {"english": "What is the capital of {c}?", "swahili": "Mji mkuu wa {c} ni upi?"}
CITIES = [("Paris", "France"), ("Nairobi", "Kenya"), ("Lima", "Peru"), ("Oslo", "Norway")]
FLORES = {
    "eng_Latn": [
        "The river is long.",
        "Birds sing at dawn.",
        "The market opens early.",
        "Rain fell all night.",
    ],
    "swh_Latn": ["Mto ni mrefu.", "Ndege huimba alfajiri.", "Soko hufunguliwa mapema.", "Mvua ilinyesha."],
}


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _tydiqa(name, n):
    rows = []
    for i in range(n):
        x, c = CITIES[i % len(CITIES)]
        context = f"{x}, {c}."
        rows.append({"id": f"{name}-{i}-0", "title": "", "context": context,
                     "question": QUESTIONS[name].format(c=c),
                     "answers": {"text": [x], "answer_start": [0]}})  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel_trial")
    _write(root / "data/tydiqa/train.jsonl", _tydiqa("english", 12))
    _write(root / "data/tydiqa/validation.jsonl", _tydiqa("english", 20) + _tydiqa("swahili", 20))
    for config, sentences in FLORES.items():
        rows = [{"id": i + 1, "URL": "", "domain": "wikinews", "topic": "", "has_image": 0,
                 "has_hyperlink": 0, "sentence": s} for i, s in enumerate(sentences)]  # fmt: skip
        _write(root / f"data/{config}/dev.jsonl", rows)
    torch.manual_seed(0)
    for size in ("s", "xs"):
        T5ForConditionalGeneration(tiny_config(size)).save_pretrained(root / size)
        ByT5Tokenizer().save_pretrained(root / size)
    return root


OVERRIDES = [
    "task.name=xtreme_r/tydiqa", "task.languages=[sw]", "task.n_train=12", "task.n_dev=2",
    "teacher.aux_translation=0", "search.aux_translation=null", "search.teacher=[s]", "search.student=[xs]",
    "train.max_steps=2", "train.eval_every=2", "train.batch_size=4", "train.warmup_steps=1",
    "eval.max_new_tokens=4", "stop.wlr=null",
]  # fmt: skip


def _trial(setup, out, overrides, cache):
    sweep = load("quickstart", [*OVERRIDES, f"task.data_dir={setup / 'data'}", *overrides,
                                f"distill.cache={str(cache).lower()}"])  # fmt: skip
    family = get_family("tiny")
    cache_file = ensure_cache(setup / "s", sweep, out / "cache") if cache else None
    searched = {
        "lr": 1e-3, "adapter_rank": 0, "teacher": "s", "student": "xs",
        "teacher_params": family.size("s").params, "student_params": family.size("xs").params,
        "ratio": family.ratio("s", "xs"),
    }  # fmt: skip
    artefacts = Artefacts(
        models={"xs": str(setup / "xs")}, teachers={"s": str(setup / "s")},
        teacher_cache={"s": str(cache_file)} if cache else {},
    )  # fmt: skip
    config = TrialConfig.build(searched, sweep, artefacts)
    return run(config, LocalSession(out / "trial"))


def test_a_tydiqa_trial_distils_its_encoder_levels_on_flores_pairs_cached_or_not(setup, tmp_path):
    flores = ["task.parallel_source=flores"]
    live = _trial(setup, tmp_path / "live", flores, cache=False)
    cached = _trial(setup, tmp_path / "cached", flores, cache=True)
    english = _trial(setup, tmp_path / "english", [], cache=False)  # no source: the encoder sees English QA
    for term in ("word", "sentence", "structure", "token", "task"):
        assert live[f"train/loss_{term}"] > 0, term
        # fp16 teacher outputs in the cache: equal to the live teacher's up to rounding.
        assert cached[f"train/loss_{term}"] == pytest.approx(live[f"train/loss_{term}"], rel=2e-2), term
    # The same task batches and task losses, other encoder-side inputs: the corpus pairs were used.
    assert english["train/loss_task"] == pytest.approx(live["train/loss_task"], rel=1e-2)
    assert english["train/loss_sentence"] != pytest.approx(live["train/loss_sentence"], rel=1e-2)
    assert 0 <= live["eval/sw/f1"] <= 100
