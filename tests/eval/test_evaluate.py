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
from mmkd.eval.wlr_file import score_jsonl, to_json

DE, TE, EN = "vor 3 Tagen; vor 5 Stunden", "3 రోజుల క్రితం; 5 గంటల క్రితం", "3 days ago; 5 hours ago"
# lid.176 reads the short English target above as Italian; a plainly English answer for the wrong outputs:
ENGLISH = "It happened three days ago and then again five hours ago."


def test_chrf_matches_sacrebleu():
    hyps, refs = ["vor 3 Tagen", "vor 5 Stunden"], ["vor 3 Tagen", "vor 4 Stunden"]
    assert chrf(hyps, refs) == pytest.approx(CHRF().corpus_score(hyps, [refs]).score)
    assert chrf_per_example(hyps, refs)[0] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        chrf(hyps, refs[:1])


def test_generate_keeps_input_order_and_restores_train_mode():
    torch.manual_seed(0)
    tok = ByT5Tokenizer()
    model = T5ForConditionalGeneration(
        T5Config(
            vocab_size=len(tok),
            d_model=32,
            d_ff=64,
            num_layers=1,
            num_heads=2,
            d_kv=16,
            decoder_start_token_id=0,
        )
    )
    model.train()
    texts = ["a", "a much longer input text", "mid length"]
    batched = generate(model, tok, texts, batch_size=2, max_new_tokens=5)
    single = [generate(model, tok, [t], max_new_tokens=5)[0] for t in texts]
    assert batched == single
    assert model.training


def test_evaluation_reports_the_metric_contract_and_group_means():
    lid = get_langid()
    refs = {"en": [EN, EN], "de": [DE, DE], "te": [TE, TE]}
    outputs = {"en": [EN, EN], "de": [DE, ENGLISH], "te": [ENGLISH, "42"]}
    ids = {lang: ["dev-0", "dev-1"] for lang in refs}
    ev = evaluate_outputs(outputs, refs, ids, source_lang="en", low_resource=["te"], langid=lid)
    m = ev.metrics
    for lang in refs:
        for key in ("chrf", "wlr", "src_rate", "undetermined", "lid_ref_acc"):
            assert f"eval/{lang}/{key}" in m
    assert m["eval/de/wlr"] == 0.5 and m["eval/de/src_rate"] == 0.5
    assert m["eval/te/wlr"] == 1.0 and m["eval/te/undetermined"] == 0.5  # "42" is undetermined
    assert m["eval/zero_shot/wlr"] == pytest.approx(0.75)
    assert m["eval/low_resource/wlr"] == 1.0
    assert m["eval/zero_shot/chrf"] == pytest.approx((m["eval/de/chrf"] + m["eval/te/chrf"]) / 2)
    assert m["eval/low_resource/chrf"] == m["eval/te/chrf"]
    assert m["eval/source/chrf"] == pytest.approx(100.0)
    assert m["eval/score"] == m["eval/zero_shot/chrf"]
    assert len(ev.examples) == 6
    assert {e["verdict"] for e in ev.examples if e["lang"] == "te"} == {"wrong", "undetermined"}


def test_group_wlr_skips_languages_with_nothing_determined():
    lid = get_langid()
    ev = evaluate_outputs(
        {"en": [EN], "de": [DE], "te": ["1"]},
        {"en": [EN], "de": [DE], "te": [TE]},
        {"en": ["a"], "de": ["a"], "te": ["a"]},
        source_lang="en",
        low_resource=["te"],
        langid=lid,
    )
    assert math.isnan(ev.metrics["eval/te/wlr"])
    assert ev.metrics["eval/zero_shot/wlr"] == 0.0
    assert math.isnan(ev.metrics["eval/low_resource/wlr"])


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
            {"output": ENGLISH, "lang": "de", "reference": DE},
            "",
            {"output": "7", "lang": "te"},
        ],
    )
    scores = score_jsonl(path, langid=get_langid())
    assert scores["de"][0].wlr == 0.5 and scores["de"][1] == 1.0
    assert scores["te"][0].undetermined == 1 and scores["te"][1] is None
    assert main(["wlr", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["de"]["wlr"] == 0.5 and out["te"]["undetermined"] == 1 and out["te"]["wlr"] is None
    assert to_json(scores)["de"]["lid_ref_acc"] == 1.0
    assert main(["wlr", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == [
        "lang",
        "n",
        "determined",
        "undetermined",
        "wrong",
        "wlr",
        "src_rate",
        "lid_ref_acc",
    ]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "out.jsonl:2: not valid JSON"),
        ('["a"]', "out.jsonl:2: expected a JSON object"),
        ('{"output": 3, "lang": "de"}', "out.jsonl:2: 'output' must be a string"),
        ('{"output": "x"}', "out.jsonl:2: 'lang' must be a string"),
    ],
)
def test_bad_lines_name_the_line_number_and_exit_2(tmp_path, capsys, line, message):
    path = _write(tmp_path / "out.jsonl", [{"output": DE, "lang": "de"}, line])
    with pytest.raises(UserInputError, match=message):
        score_jsonl(path, langid=get_langid())
    assert main(["wlr", str(path)]) == 2
    assert message in capsys.readouterr().err
