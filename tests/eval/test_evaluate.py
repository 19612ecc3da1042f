"""chrF, generation order, the metric contract of one evaluation, and `mmkd wlr` on a file."""

import json
import math

import pytest
import torch
from sacrebleu.metrics import CHRF
from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

from mmkd.cli import main
from mmkd.errors import UserInputError
from mmkd.eval.evaluate import evaluate_outputs
from mmkd.eval.generate import generate
from mmkd.eval.langid import get_langid
from mmkd.eval.metrics import chrf, chrf_per_example
from mmkd.eval.wlr_file import format_table, score_jsonl, to_json

DE, TE, EN = "vor 3 Tagen; vor 5 Stunden", "3 రోజుల క్రితం; 5 గంటల క్రితం", "3 days ago; 5 hours ago"
# lid.176 reads the short English target above as Italian; a plainly English answer for the wrong outputs:
ENGLISH = "It happened three days ago and then again five hours ago."
WOLOF = "Dama bëgg lekk ceebu jën ak sama xarit yi."


def test_chrf_matches_sacrebleu():
    hyps = ["vor 3 Tagen", "vor 5 Stunden", "3 days ago"]
    refs = ["vor 3 Tagen", "vor 4 Stunden", "vor 3 Tagen"]
    sacre = CHRF()
    assert chrf(hyps, refs) == pytest.approx(sacre.corpus_score(hyps, [refs]).score)
    assert chrf_per_example(hyps, refs) == pytest.approx(
        [sacre.sentence_score(h, [r]).score for h, r in zip(hyps, refs, strict=True)]
    )
    assert chrf_per_example(hyps, refs)[0] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="3 hypotheses for 1 references"):
        chrf(hyps, refs[:1])
    with pytest.raises(ValueError, match="empty corpus"):
        chrf_per_example([], [])


def _tiny_t5():
    torch.manual_seed(0)
    tok = ByT5Tokenizer()
    config = T5Config(
        vocab_size=len(tok), d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16, decoder_start_token_id=0
    )
    model = T5ForConditionalGeneration(config)
    # A random model mostly emits special tokens and stray bytes, which decode to "" for every input and
    # would make any order pass. Only the letters a-z keep (amplified) output rows, so outputs are
    # visible text that depends on the input.
    with torch.no_grad():
        rows = model.get_output_embeddings().weight
        letters = torch.zeros(rows.shape[0], dtype=torch.bool)
        letters[tok.convert_tokens_to_ids(list("abcdefghijklmnopqrstuvwxyz"))] = True
        rows[~letters] = 0
        rows[letters] *= 10
    return model, tok


TEXTS = ["a", "a much longer input text", "mid length", "", "ünïcödé and 日本語"]


def test_generate_keeps_input_order_and_restores_train_mode():
    model, tok = _tiny_t5()
    model.train()
    batched = generate(model, tok, TEXTS, batch_size=2, max_new_tokens=5)
    assert model.training
    model.eval()
    single = [generate(model, tok, [t], max_new_tokens=5)[0] for t in TEXTS]
    assert not model.training
    assert batched == single
    assert len(set(single)) > 1  # distinct outputs, or order would not be tested
    assert generate(model, tok, []) == []
    with pytest.raises(ValueError, match="batch_size must be >= 1 \\(got 0\\)"):
        generate(model, tok, TEXTS, batch_size=0)


def test_generate_through_a_peft_wrapper():
    from peft import LoraConfig, get_peft_model

    model, tok = _tiny_t5()
    plain = generate(model, tok, TEXTS, batch_size=2, max_new_tokens=5)
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["q", "v"]))
    wrapped.train()
    # A fresh LoRA adapter is an exact no-op (B = 0): the outputs must not change.
    assert generate(wrapped, tok, TEXTS, batch_size=2, max_new_tokens=5) == plain
    assert wrapped.training


def test_evaluation_reports_the_metric_contract_and_group_means():
    lid = get_langid()
    refs = {"en": [EN, EN], "de": [DE, DE], "te": [TE, TE]}
    outputs = {"en": [EN, EN], "de": [DE, ENGLISH], "te": [ENGLISH, "42"]}
    ids = {lang: ["dev-0", "dev-1"] for lang in refs}
    ev = evaluate_outputs(outputs, refs, ids, source_lang="en", low_resource=["te"], langid=lid)
    m = ev.metrics
    per_lang = {f"eval/{lang}/{key}" for lang in refs for key in ("chrf", "wlr", "src_rate", "undetermined")}
    per_lang |= {f"eval/{lang}/lid_ref_acc" for lang in refs}
    groups = {f"eval/{g}/{k}" for g in ("zero_shot", "low_resource") for k in ("chrf", "wlr")}
    assert set(m) == per_lang | groups | {"eval/source/chrf", "eval/score"}
    assert m["eval/de/wlr"] == 0.5 and m["eval/de/src_rate"] == 0.5 and m["eval/de/undetermined"] == 0.0
    assert m["eval/te/wlr"] == 1.0 and m["eval/te/undetermined"] == 0.5  # "42" is undetermined
    assert m["eval/en/wlr"] == 1.0  # lid.176 reads the short English line as Italian...
    assert m["eval/en/lid_ref_acc"] == 0.0 and ev.unreliable_langs == ["en"]  # ...and that is flagged
    assert m["eval/de/chrf"] == pytest.approx(CHRF().corpus_score([DE, ENGLISH], [[DE, DE]]).score)
    assert m["eval/zero_shot/wlr"] == pytest.approx(0.75)
    assert m["eval/low_resource/wlr"] == 1.0
    assert m["eval/zero_shot/chrf"] == pytest.approx((m["eval/de/chrf"] + m["eval/te/chrf"]) / 2)
    assert m["eval/low_resource/chrf"] == m["eval/te/chrf"]
    assert m["eval/source/chrf"] == pytest.approx(100.0)
    assert m["eval/score"] == m["eval/zero_shot/chrf"]
    assert ev.examples[3] == {
        "lang": "de",
        "id": "dev-1",
        "chrf": pytest.approx(CHRF().sentence_score(ENGLISH, [DE]).score),
        "verdict": "wrong",
        "label": "en",
        "output": ENGLISH,
    }
    assert [(e["lang"], e["verdict"]) for e in ev.examples[4:]] == [("te", "wrong"), ("te", "undetermined")]


def test_group_wlr_skips_languages_with_nothing_determined():
    lid = get_langid()
    ev = evaluate_outputs(
        {"en": [EN], "de": [DE], "te": ["1"]},
        {"en": [EN], "de": [DE], "te": [TE]},
        {"en": ["a"], "de": ["a"], "te": ["a"]},
        source_lang="en",
        low_resource=["te", "sw"],  # low-resource languages not evaluated are simply absent
        langid=lid,
    )
    assert math.isnan(ev.metrics["eval/te/wlr"])
    assert ev.metrics["eval/zero_shot/wlr"] == 0.0
    assert math.isnan(ev.metrics["eval/low_resource/wlr"])
    assert ev.metrics["eval/low_resource/chrf"] == ev.metrics["eval/te/chrf"]


class _Counting:
    """Labels every text German and records what it was asked to identify."""

    name = "counting"

    def __init__(self):
        self.seen: list[str] = []

    def predict(self, texts):
        self.seen.extend(texts)
        return [("de", 0.9) for _ in texts]


def test_references_are_identified_once_per_reference_set():
    lid = _Counting()
    refs = {"de": ["Referenz eins", "Referenz zwei"]}
    for outputs in (["erste Ausgabe", "zweite"], ["dritte Ausgabe", "vierte"]):
        evaluate_outputs(
            {"de": outputs}, refs, {"de": ["0", "1"]}, source_lang="en", low_resource=[], langid=lid
        )
    assert lid.seen.count("Referenz eins") == 1
    assert lid.seen.count("dritte Ausgabe") == 1
    evaluate_outputs(
        {"de": ["x"]}, {"de": ["Referenz drei"]}, {"de": ["0"]}, source_lang="en", low_resource=[], langid=lid
    )
    assert "Referenz drei" in lid.seen  # new references, new identification


def test_a_language_the_detector_cannot_see_is_flagged():
    ev = evaluate_outputs(
        {"en": [ENGLISH], "wo": [WOLOF]},
        {"en": [ENGLISH], "wo": [WOLOF]},
        {"en": ["0"], "wo": ["0"]},
        source_lang="en",
        low_resource=["wo"],
        langid=get_langid(),
    )
    assert ev.metrics["eval/wo/lid_ref_acc"] == 0.0 and ev.unreliable_langs == ["wo"]


def test_mismatched_inputs_name_the_language():
    lid = _Counting()
    with pytest.raises(ValueError, match="de: 2 outputs but 1 references"):
        evaluate_outputs(
            {"de": ["a", "b"]},
            {"de": ["a"]},
            {"de": ["0", "1"]},
            source_lang="en",
            low_resource=[],
            langid=lid,
        )
    with pytest.raises(ValueError, match="te: 1 outputs but none ids"):
        evaluate_outputs({"te": ["a"]}, {"te": ["a"]}, {}, source_lang="en", low_resource=[], langid=lid)
    with pytest.raises(ValueError, match="te: no outputs"):
        evaluate_outputs({"te": []}, {"te": []}, {"te": []}, source_lang="en", low_resource=[], langid=lid)


def _write(path, rows):
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows)
    )
    return path


def test_score_jsonl_and_cli_json(tmp_path, capsys):
    path = _write(
        tmp_path / "out.jsonl",
        [
            {"output": DE, "lang": "de", "reference": DE},
            {"output": ENGLISH, "lang": "deu", "reference": DE},  # "deu" is German too
            "",
            {"output": "7", "lang": "te"},
        ],
    )
    scores = score_jsonl(path, langid=get_langid())
    assert list(scores) == ["de", "te"]
    de, te = scores["de"], scores["te"]
    assert (de.n, de.determined, de.wrong, de.in_source, de.wlr, de.lid_ref_acc) == (2, 2, 1, 1, 0.5, 1.0)
    assert te.undetermined == 1 and te.lid_ref_acc is None
    blocks = to_json(scores)
    fields = {"n", "determined", "undetermined", "wrong", "in_source", "wlr", "src_rate", "lid_ref_acc"}
    assert all(set(b) == fields for b in blocks.values())
    assert blocks["te"] == {
        "n": 1,
        "determined": 0,
        "undetermined": 1,
        "wrong": 0,
        "in_source": 0,
        "wlr": None,  # nothing determined: JSON has no NaN
        "src_rate": None,
        "lid_ref_acc": None,
    }
    assert blocks["de"]["lid_ref_acc"] == 1.0
    assert main(["wlr", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == blocks
    table = format_table(scores).splitlines()
    assert table[0].split() == [
        "lang",
        "n",
        "determined",
        "undetermined",
        "wrong",
        "wlr",
        "src_rate",
        "lid_ref_acc",
    ]
    assert table[1].split() == ["de", "2", "2", "0", "1", "0.500", "0.500", "1.000"]
    assert table[2].split() == ["te", "1", "0", "1", "0", "-", "-", "-"]
    assert main(["wlr", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == table


def test_table_without_references_has_no_reference_column(tmp_path):
    path = _write(tmp_path / "out.jsonl", [{"output": DE, "lang": "de"}])
    assert "lid_ref_acc" not in format_table(score_jsonl(path, langid=get_langid()))


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "out.jsonl:2: not valid JSON"),
        ('["a"]', "out.jsonl:2: expected a JSON object"),
        ('{"output": 3, "lang": "de"}', "out.jsonl:2: 'output' must be a string"),
        ('{"output": "x"}', "out.jsonl:2: 'lang' must be a string"),
        ('{"output": "x", "lang": ""}', "out.jsonl:2: 'lang' must name a language"),
        ('{"output": "x", "lang": "de", "reference": null}', "out.jsonl:2: 'reference' must be a string"),
    ],
)
def test_bad_lines_name_the_line_number_and_exit_2(tmp_path, capsys, line, message):
    path = _write(tmp_path / "out.jsonl", [{"output": DE, "lang": "de"}, line])
    with pytest.raises(UserInputError, match=message):
        score_jsonl(path, langid=get_langid())
    assert main(["wlr", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_undecodable_line_and_bad_tau_exit_2(tmp_path, capsys):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"output": "ok", "lang": "de"}\n\n{"output": "\xff", "lang": "de"}\n')
    with pytest.raises(UserInputError, match=r"out\.jsonl:3: not UTF-8"):
        score_jsonl(path, langid=get_langid())
    good = _write(tmp_path / "good.jsonl", [{"output": DE, "lang": "de"}])
    assert main(["wlr", str(good), "--tau", "1.5"]) == 2
    assert "tau: must be in (0, 1) (got 1.5)" in capsys.readouterr().err
