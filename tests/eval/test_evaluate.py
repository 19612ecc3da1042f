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
from mmkd.names import per_language

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
    per_lang |= {f"eval/{lang}/{key}" for lang in refs for key in ("lid_ref_acc", "exact")}
    groups = {f"eval/{g}/{k}" for g in ("zero_shot", "low_resource") for k in ("chrf", "wlr", "exact")}
    assert set(m) == per_lang | groups | {"eval/source/chrf", "eval/source/exact", "eval/score"}
    # Exact answers: both in English, one of two in German, none in Telugu.
    assert [m[f"eval/{lang}/exact"] for lang in ("en", "de", "te")] == [100, 50, 0]
    assert {k for k in m if per_language(k)} == per_lang  # what `mmkd trial run` leaves out of its summary
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
        "exact": 0.0,
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


# --- task metrics in an evaluation (QA: F1/EM, NER: entity F1) ---

QA_OUT = {
    "en": ["Paris", "London"],
    "de": ["Berlin", "Der Fluss Rhein"],
    "sw": ["Nairobi", "mji mkuu"],
}
QA_GOLDS = {
    "en": [("Paris",), ("London",)],
    "de": [("Berlin",), ("der Rhein", "Rhein")],
    "sw": [("Nairobi",), ("Mombasa",)],
}


def _qa_evaluation():
    refs = {lang: [golds[0] for golds in QA_GOLDS[lang]] for lang in QA_GOLDS}
    ids = {lang: [f"q{i}" for i in range(2)] for lang in QA_GOLDS}
    return evaluate_outputs(
        QA_OUT,
        refs,
        ids,
        source_lang="en",
        low_resource=["sw"],
        langid=get_langid(),
        metric="qa",
        golds=QA_GOLDS,
    )


def test_a_qa_evaluation_reports_f1_and_em_per_language_and_group_and_scores_zero_shot_f1():
    ev = _qa_evaluation()
    m = ev.metrics
    # de: "Berlin" is exact; "Der Fluss Rhein" loses its article ("fluss rhein") and shares one token with
    # the best gold answer "rhein": precision 1/2, recall 1, F1 2/3; not an exact match.
    assert m["eval/de/f1"] == pytest.approx((100 + 200 / 3) / 2)
    assert m["eval/de/em"] == pytest.approx(50.0)
    assert m["eval/sw/f1"] == pytest.approx(50.0) and m["eval/sw/em"] == pytest.approx(50.0)
    assert m["eval/en/f1"] == m["eval/en/em"] == pytest.approx(100.0)
    assert m["eval/zero_shot/f1"] == pytest.approx((m["eval/de/f1"] + 50) / 2)
    assert m["eval/zero_shot/em"] == pytest.approx(50.0)
    assert m["eval/low_resource/f1"] == pytest.approx(50.0)
    assert m["eval/source/f1"] == m["eval/source/em"] == pytest.approx(100.0)
    assert m["eval/score"] == m["eval/zero_shot/f1"]  # QA's primary metric, not chrF
    # chrF and WLR stay, against the first gold answer.
    assert m["eval/de/chrf"] == pytest.approx(
        CHRF().corpus_score(QA_OUT["de"], [["Berlin", "der Rhein"]]).score
    )
    assert {"eval/de/wlr", "eval/zero_shot/chrf", "eval/low_resource/wlr", "eval/source/chrf"} <= set(m)
    row = next(e for e in ev.examples if e["lang"] == "de" and e["id"] == "q1")
    assert row["f1"] == pytest.approx(200 / 3) and row["em"] == 0.0 and "chrf" in row


def test_an_ner_evaluation_reports_micro_entity_f1_and_per_example_counts():
    outputs = {"en": ["PER: Ada"], "sw": ["PER: Juma Kassim; LOC: Arusha", "ORG: Benki Kuu"]}
    refs = {"en": ["PER: Ada"], "sw": ["PER: Juma Kassim; LOC: Dodoma", "ORG: Benki Kuu"]}
    ids = {"en": ["e0"], "sw": ["s0", "s1"]}
    ev = evaluate_outputs(
        outputs, refs, ids, source_lang="en", low_resource=["sw"], langid=get_langid(), metric="entities"
    )
    # sw: 2 of 3 predicted entities right, 2 of 3 gold entities found: micro F1 2/3 (the per-sentence
    # F1s, 50 and 100, would average 75).
    assert ev.metrics["eval/sw/f1"] == pytest.approx(200 / 3)
    assert "eval/sw/em" not in ev.metrics
    assert ev.metrics["eval/score"] == ev.metrics["eval/zero_shot/f1"] == pytest.approx(200 / 3)
    rows = [e for e in ev.examples if e["lang"] == "sw"]
    assert [(r["f1"], r["hits"], r["n_pred"], r["n_gold"]) for r in rows] == [
        (50.0, 1, 2, 2),
        (100.0, 1, 1, 1),
    ]


def test_the_builtin_metric_adds_exact_match_and_an_unknown_metric_is_named():
    refs = {"en": [EN], "de": [DE]}
    ids = {"en": ["0"], "de": ["0"]}
    ev = evaluate_outputs(refs, refs, ids, source_lang="en", low_resource=[], langid=get_langid())
    assert not any(k.endswith(("/f1", "/em")) for k in ev.metrics)
    assert ev.metrics["eval/score"] == ev.metrics["eval/zero_shot/chrf"]
    assert set(ev.examples[0]) == {"lang", "id", "chrf", "verdict", "label", "output", "exact"}
    assert ev.metrics["eval/zero_shot/exact"] == 100
    with pytest.raises(UserInputError, match="unknown task metric 'qaa' \\(did you mean 'qa'\\?\\)"):
        evaluate_outputs(
            refs, refs, ids, source_lang="en", low_resource=[], langid=get_langid(), metric="qaa"
        )


def test_every_task_names_a_task_metric():
    from mmkd.data import TASKS, get_task
    from mmkd.eval.task_metrics import get_task_metric

    primary = {name: get_task_metric(get_task(name).metric).primary for name in TASKS.names()}
    assert primary == {
        "builtin/cldr": "chrf",
        "xtreme_r/mlqa": "f1",
        "xtreme_r/panx": "f1",
        "xtreme_r/tatoeba": "chrf",
        "xtreme_r/tydiqa": "f1",
        "xtreme_r/xquad": "f1",
    }


# --- forced target-language BOS (NLLB-200, mBART-50) ---


class _Spy:
    """A real model whose ``generate`` calls are recorded: the inputs' first token and the kwargs."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def generate(self, **kwargs):
        out = self.model.generate(**kwargs)
        self.calls.append({"first_input": kwargs["input_ids"][:, 0].tolist(), "out": out, **kwargs})
        return out


def _tiny_m2m(vocab_size):
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    torch.manual_seed(0)
    config = M2M100Config(
        vocab_size=vocab_size, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        decoder_start_token_id=2, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )  # fmt: skip
    return M2M100ForConditionalGeneration(config)


@pytest.mark.parametrize(
    "family, make_tokenizer, codes",
    [
        ("nllb", "NllbTokenizer", {"sw": "swh_Latn", "te": "tel_Telu"}),
        ("mbart50", "MBart50Tokenizer", {"sw": "sw_KE", "te": "te_IN"}),
    ],
)
def test_generation_forces_each_languages_token_and_marks_the_input_with_it(family, make_tokenizer, codes):
    import transformers

    tok = getattr(transformers, make_tokenizer)()  # built offline: no vocabulary file, the language tokens
    spy = _Spy(_tiny_m2m(len(tok)))
    texts, langs = ["habari yako", "ఎలా ఉన్నారు", "asante sana rafiki"], ["sw", "te", "sw"]
    before = tok.src_lang
    outputs = generate(spy, tok, texts, langs=langs, family=family, batch_size=8, max_new_tokens=4)
    assert len(outputs) == 3 and tok.src_lang == before  # the tokenizer is left as it was
    by_lang = {}
    for call in spy.calls:  # one batch per language, never mixed
        (first,) = set(call["first_input"])
        by_lang[tok.convert_ids_to_tokens(first)] = call
    assert set(by_lang) == set(codes.values())
    for code in codes.values():
        call = by_lang[code]
        assert call["forced_bos_token_id"] == tok.convert_tokens_to_ids(code)
        # The model really generated it: decoder start, then the language token.
        assert set(call["out"][:, 1].tolist()) == {tok.convert_tokens_to_ids(code)}
    assert len(spy.calls[0]["first_input"]) + len(spy.calls[1]["first_input"]) == 3


def test_generation_tags_the_tiny_familys_inputs_and_needs_languages_for_nllb():
    model, tok = _tiny_t5()
    spy = _Spy(model)
    langs = ["de", "sw", "de", "sw", "te"]
    with_langs = generate(spy, tok, TEXTS, langs=langs, family="tiny", batch_size=8, max_new_tokens=5)
    assert all("forced_bos_token_id" not in call for call in spy.calls)
    assert len(spy.calls) == 3  # batched by language
    # Each input behind its language's tag (the tiny family's way of being told the output language).
    tags = {tok.decode(row[:5]) for call in spy.calls for row in call["input_ids"].tolist()}
    assert tags == {"<2de>", "<2sw>", "<2te>"}
    tagged_texts = [f"<2{lang}> {text}" for lang, text in zip(langs, TEXTS, strict=True)]
    assert with_langs == generate(model, tok, tagged_texts, batch_size=8, max_new_tokens=5)
    with pytest.raises(ValueError, match="family 'nllb' is told its output language"):
        generate(model, tok, TEXTS, family="nllb")
    with pytest.raises(ValueError, match="5 texts but 1 languages"):
        generate(model, tok, TEXTS, langs=["de"])
