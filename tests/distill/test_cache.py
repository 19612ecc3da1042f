"""The teacher-output cache: same losses as running the teacher, atomic, keyed by the teacher."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import ByT5Tokenizer, T5ForConditionalGeneration

from mmkd.config import load
from mmkd.data import get_task
from mmkd.data.collate import encode_batch, token_spans
from mmkd.distill.cache import CachedTeacher, LiveTeacher, build_cache, cache_complete, cache_path
from mmkd.distill.losses import MMKDHeads
from mmkd.models.zoo import tiny_config
from mmkd.trial import loss_step


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    tok = ByT5Tokenizer()
    teacher = T5ForConditionalGeneration(tiny_config("s")).eval()
    student = T5ForConditionalGeneration(tiny_config("xs"))
    examples = get_task("builtin/cldr", n_train=20).examples("train", "en")
    return tok, teacher, student, examples


def test_cached_and_recomputed_teacher_give_the_same_loss(setup, tmp_path):
    tok, teacher, student, examples = setup
    path = build_cache(
        teacher,
        tok,
        examples,
        tmp_path / "c.safetensors",
        k=8,
        max_source_len=128,
        max_target_len=96,
        batch_size=7,
    )  # batches of 7: padding differs from the trial's
    sweep = load("quickstart", ["distill.parallel=false"])
    idx = [3, 17, 5, 5, 0]
    batch_examples = [examples[i] for i in idx]
    batch = encode_batch(tok, batch_examples, 128, 96)
    spans = token_spans(tok, batch_examples, 128)
    view = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "spans": spans}
    heads = MMKDHeads(student.config.d_model, teacher.config.d_model)
    cached = CachedTeacher(path).outputs(idx, batch, spans)
    live = LiveTeacher(teacher, 8).outputs(idx, batch, spans)
    _, terms_c = loss_step(student, heads, batch, spans, cached, sweep.distill, view)
    _, terms_l = loss_step(student, heads, batch, spans, live, sweep.distill, view)
    assert set(terms_c) == {"task", "token", "word", "sentence", "structure"}
    for name in terms_c:
        assert terms_c[name] == pytest.approx(terms_l[name], rel=2e-3, abs=2e-3), name  # fp16 storage
    assert CachedTeacher(path).hidden_size == teacher.config.d_model


def test_cache_key_changes_with_the_teacher_and_the_write_is_atomic(setup, tmp_path):
    tok, teacher, _, examples = setup
    tdir = tmp_path / "teacher"
    tdir.mkdir()
    (tdir / "mmkd_teacher.json").write_text(json.dumps({"final_loss": 1.0}))
    a = cache_path(tmp_path, tdir, {"task": "x"}, 8)
    (tdir / "mmkd_teacher.json").write_text(json.dumps({"final_loss": 0.5}))  # a retrained teacher
    assert cache_path(tmp_path, tdir, {"task": "x"}, 8) != a
    assert cache_path(tmp_path, tdir, {"task": "x"}, 16) != cache_path(tmp_path, tdir, {"task": "x"}, 8)
    path = build_cache(teacher, tok, examples[:4], a, k=4, max_source_len=64, max_target_len=64)
    # Nothing left but the builders' lock file (mmkd.atomic): no temporary copy.
    assert path == a and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [f".{a.name}.lock"]
    mtime = path.stat().st_mtime_ns
    assert build_cache(teacher, tok, examples[:4], a, k=4, max_source_len=64, max_target_len=64) == a
    assert path.stat().st_mtime_ns == mtime  # found, not rebuilt


def test_a_half_written_cache_is_detected_and_rebuilt(setup, tmp_path, capsys):
    tok, teacher, _, examples = setup
    path = tmp_path / "teacher-cache-x.safetensors"
    build = dict(k=4, max_source_len=64, max_target_len=64)
    build_cache(teacher, tok, examples[:4], path, **build)
    whole = path.read_bytes()
    built = {k: v.clone() for k, v in load_file(str(path)).items()}
    path.write_bytes(whole[: len(whole) - 100])  # a copy cut short
    assert not cache_complete(path)
    assert build_cache(teacher, tok, examples[:4], path, **build) == path
    assert cache_complete(path) and len(path.read_bytes()) == len(whole)
    rebuilt = load_file(str(path))  # (the header's metadata order differs between writes, not the tensors)
    assert set(rebuilt) == set(built) and all(torch.equal(rebuilt[k], built[k]) for k in built)
    assert "incomplete or damaged; replaced by a rebuilt copy" in capsys.readouterr().err
    save_file({"sentence": torch.zeros(2, 2)}, str(path))  # whole, but not a teacher cache
    assert not cache_complete(path)
