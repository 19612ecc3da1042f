"""The teacher-output cache: same losses as running the teacher, atomic, keyed by the teacher."""

import json
from dataclasses import asdict

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import ByT5Tokenizer, T5ForConditionalGeneration

from mmkd.config import load
from mmkd.data import Example, get_task
from mmkd.data.collate import encode_batch, token_spans
from mmkd.distill.cache import (
    CACHE_TENSORS,
    CachedTeacher,
    CacheSettings,
    LiveTeacher,
    build_shard,
    build_sharded,
    cache_complete,
    cache_path,
    compute_outputs,
    merge_shards,
    shard_dir,
    shard_ranges,
    sweep_cache_path,
)
from mmkd.distill.losses import MMKDHeads
from mmkd.errors import UserInputError
from mmkd.models.langcodes import tagged
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
    settings = CacheSettings(k=8, max_source_len=128, max_target_len=96, batch_size=7)
    # batches of 7: padding differs from the trial's
    path = build_sharded(lambda: (teacher, tok), examples, tmp_path / "c.safetensors", 1, settings)
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


SMALL = CacheSettings(k=4, max_source_len=64, max_target_len=64)


def test_cache_key_changes_with_the_teacher_and_the_write_is_atomic(setup, tmp_path):
    tok, teacher, _, examples = setup
    tdir = tmp_path / "teacher"
    tdir.mkdir()
    (tdir / "mmkd_teacher.json").write_text(json.dumps({"final_loss": 1.0}))
    a = cache_path(tmp_path, tdir, {"task": "x"}, 8)
    (tdir / "mmkd_teacher.json").write_text(json.dumps({"final_loss": 0.5}))  # a retrained teacher
    assert cache_path(tmp_path, tdir, {"task": "x"}, 8) != a
    assert cache_path(tmp_path, tdir, {"task": "x"}, 16) != cache_path(tmp_path, tdir, {"task": "x"}, 8)
    path = build_sharded(lambda: (teacher, tok), examples[:4], a, 1, SMALL)
    # Nothing left but the builders' lock file (mmkd.atomic): no temporary copy.
    assert path == a and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [f".{a.name}.lock"]
    mtime = path.stat().st_mtime_ns
    assert build_sharded(lambda: (teacher, tok), examples[:4], a, 1, SMALL) == a
    assert path.stat().st_mtime_ns == mtime  # found, not rebuilt


def test_a_half_written_cache_is_detected_and_rebuilt(setup, tmp_path, capsys):
    tok, teacher, _, examples = setup
    path = tmp_path / "teacher-cache-x.safetensors"
    build_sharded(lambda: (teacher, tok), examples[:4], path, 1, SMALL)
    whole = path.read_bytes()
    built = {k: v.clone() for k, v in load_file(str(path)).items()}
    path.write_bytes(whole[: len(whole) - 100])  # a copy cut short
    assert not cache_complete(path)
    assert build_sharded(lambda: (teacher, tok), examples[:4], path, 1, SMALL) == path
    assert cache_complete(path) and len(path.read_bytes()) == len(whole)
    rebuilt = load_file(str(path))  # (the header's metadata order differs between writes, not the tensors)
    assert set(rebuilt) == set(built) and all(torch.equal(rebuilt[k], built[k]) for k in built)
    assert "incomplete or damaged; replaced by a rebuilt copy" in capsys.readouterr().err
    save_file({"sentence": torch.zeros(2, 2)}, str(path))  # whole, but not a teacher cache
    assert not cache_complete(path)


# ---------------------------------------------------------------------------------------------------
# Shards
# ---------------------------------------------------------------------------------------------------


def english(i, text):
    """A parallel corpus's English sentence as the cache reads it: one aligned field, no target."""
    return Example(f"flores-{i}", "en", text, "", ((0, len(text)),))


@pytest.fixture(scope="module")
def rows(setup):
    """Training examples (two aligned fields each), then a corpus's English sentences (one field, empty
    target): 26 rows, 7 batches of 4, the last two of sentences only."""
    sentences = ["The river is long.", "Birds sing at dawn.", "The market opens early.", "Rain fell.",
                 "Snow.", "A cat sat on the mat by the door."]  # fmt: skip
    return tagged("tiny", setup[3] + [english(i, t) for i, t in enumerate(sentences)])


SETTINGS = CacheSettings(k=8, max_source_len=96, max_target_len=32, batch_size=4)


def _one_process(setup, rows, path):
    """The reference: every row computed in one go and written as a cache (no shards, no merge)."""
    tok, teacher = setup[0], setup[1]
    save_file(compute_outputs(teacher, tok, rows, **asdict(SETTINGS)), str(path),
              metadata={"examples": str(len(rows)), "k": str(SETTINGS.k)})  # fmt: skip
    return path


def _same_file(a, b):
    ta, tb = load_file(str(a)), load_file(str(b))
    assert set(ta) == set(tb) == CACHE_TENSORS
    for name in ta:
        assert ta[name].dtype == tb[name].dtype and torch.equal(ta[name], tb[name]), name
    with safe_open(str(a), "pt") as fa, safe_open(str(b), "pt") as fb:
        assert fa.metadata() == fb.metadata()


def test_shards_are_whole_batches_covering_every_row_once():
    assert shard_ranges(26, 4, 4) == [range(0, 4), range(4, 12), range(12, 20), range(20, 26)]
    assert shard_ranges(26, 1, 4) == [range(0, 26)]
    assert shard_ranges(26, 50, 4) == [range(i, min(i + 4, 26)) for i in range(0, 26, 4)]  # one per batch
    for n in range(1, 200, 7):
        for shards in (1, 2, 3, 8):
            ranges = shard_ranges(n, shards, 64)
            assert [r for rng in ranges for r in rng] == list(range(n)) and all(ranges)
            assert all(r.start % 64 == 0 for r in ranges) and len(ranges) == min(shards, -(-n // 64))


@pytest.mark.parametrize("shards", [1, 2, 4, 7])
def test_the_merged_cache_is_the_one_process_cache(setup, rows, tmp_path, shards):
    tok, teacher = setup[0], setup[1]
    one = _one_process(setup, rows, tmp_path / "one.safetensors")
    merged = build_sharded(lambda: (teacher, tok), rows, tmp_path / "merged.safetensors", shards, SETTINGS)
    _same_file(merged, one)
    assert CachedTeacher(merged).hidden_size == teacher.config.d_model
    assert not shard_dir(merged).exists()  # the shards are deleted once merged


def test_a_finished_shard_is_reused_and_a_cut_one_rebuilt(setup, rows, tmp_path, capsys):
    tok, teacher = setup[0], setup[1]
    path = tmp_path / "teacher-cache-x.safetensors"
    load = lambda: (teacher, tok)  # noqa: E731
    # A killed build: shards 1 and 2 of 4 were written, the second cut short mid-copy.
    first = build_shard(load, rows, path, 0, 4, SETTINGS)
    second = build_shard(load, rows, path, 1, 4, SETTINGS)
    assert first.is_file()
    second.write_bytes(second.read_bytes()[:-50])
    forwards = []
    hook = teacher.register_forward_hook(lambda module, args, out: forwards.append(1))
    try:
        merged = build_sharded(load, rows, path, 4, SETTINGS)
    finally:
        hook.remove()
    # Shard 1 (one batch) was reused; shards 2 (two batches, rebuilt), 3 and 4 (two each) computed.
    assert len(forwards) == 6
    assert "incomplete or damaged; replaced by a rebuilt copy" in capsys.readouterr().err
    _same_file(merged, _one_process(setup, rows, tmp_path / "one.safetensors"))
    assert not shard_dir(path).exists()


def test_a_merge_with_a_missing_shard_refuses_and_writes_nothing(setup, rows, tmp_path):
    path = tmp_path / "teacher-cache-x.safetensors"
    build_shard(lambda: (setup[1], setup[0]), rows, path, 0, 2, SETTINGS)
    with pytest.raises(RuntimeError, match=r"002-of-002\.safetensors are not built"):
        merge_shards(path, len(rows), 2, SETTINGS)
    assert not path.exists() and shard_dir(path).is_dir()


def test_the_cache_key_does_not_depend_on_the_shard_count(tmp_path):
    one, four = (load("quickstart", [f"distill.cache_shards={n}"]) for n in (1, 4))
    assert sweep_cache_path(tmp_path, one, tmp_path) == sweep_cache_path(tmp_path, four, tmp_path)


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_shard_count_is_one_line(value):
    with pytest.raises(UserInputError) as err:
        load("quickstart", [f"distill.cache_shards={value}"])
    assert "\n" not in str(err.value) and "distill.cache_shards" in str(err.value)
