"""The tiny family: exact sizes, span corruption, a cached build loaded through from_pretrained."""

import random

import pytest
import torch

from mmkd.config import ZooConfig
from mmkd.errors import UserInputError
from mmkd.models import get_family, load_seq2seq, wrap_student
from mmkd.models.loading import count_params
from mmkd.models.zoo import TINY_SIZES, ensure_built, span_corrupt, zoo_path

CORPUS = ["in 3 Tagen · vor 3 Tagen", "3 రోజుల్లో · 3 రోజుల క్రితం", "dans 3 jours · il y a 3 jours"] * 10


def test_tiny_family_spans_at_least_16x_in_parameters():
    sizes = get_family("tiny").sizes
    params = [s.params for s in sizes]
    assert len(sizes) >= 4
    assert params == sorted(params)
    assert params[-1] / params[0] >= 16


def test_unknown_size_and_family_say_did_you_mean():
    with pytest.raises(UserInputError, match="did you mean 'xs'"):
        get_family("tiny").size("xss")
    with pytest.raises(UserInputError, match="did you mean 'tiny'"):
        get_family("tinny")


def test_span_corruption_round_trips_to_the_original_sequence():
    rng = random.Random(0)
    sentinels = list(range(1000, 1100))
    for n in [2, 5, 17, 64]:
        ids = list(range(n))
        inp, tgt = span_corrupt(ids, rng, sentinels, noise_density=0.15, mean_span=3.0)
        masked = [t for t in tgt if t < 1000]
        assert 1 <= len(masked) < n
        # Fill each sentinel of the input with the span that follows it in the target.
        spans: dict[int, list[int]] = {}
        current = None
        for t in tgt:
            if t >= 1000:
                current = t
                spans[t] = []
            else:
                spans[current].append(t)
        rebuilt = [x for t in inp for x in (spans[t] if t >= 1000 else [t])]
        assert rebuilt == ids


def test_build_is_cached_by_content_and_loads_like_a_hub_model(tmp_path):
    settings = ZooConfig(steps=3, batch_size=4, warmup_steps=1)
    path = ensure_built("xs", settings, CORPUS, root=tmp_path)
    assert (path / "model.safetensors").is_file()
    assert ensure_built("xs", settings, CORPUS, root=tmp_path) == path  # cached: same dir, no rebuild
    assert zoo_path("xs", settings, [*CORPUS, "x"], tmp_path) != path  # another corpus, another model
    model, tok = load_seq2seq(path)
    assert count_params(model) == get_family("tiny").size("xs").params
    assert model.config.vocab_size == len(tok) == 384
    assert model.config.d_model == TINY_SIZES["xs"][0]


def test_missing_local_model_is_a_clear_user_error(tmp_path):
    with pytest.raises(UserInputError, match="cannot load model"):
        load_seq2seq(tmp_path / "nope")
    with pytest.raises(UserInputError, match="local path"):
        load_seq2seq("google/mt5-small")  # HF_HUB_OFFLINE=1 in tests: never downloads


def test_lora_student_trains_only_the_adapter_and_rank_zero_trains_everything(tmp_path):
    path = ensure_built("xs", ZooConfig(steps=1, batch_size=2, warmup_steps=1), CORPUS, root=tmp_path)
    full, _ = load_seq2seq(path)
    full = wrap_student(full, 0, ("q", "v"))
    assert count_params(full, trainable_only=True) == count_params(full)
    base, _ = load_seq2seq(path)
    lora = wrap_student(base, 4, ("q", "v"))
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    out = lora(input_ids=torch.tensor([[5, 6, 1]]), labels=torch.tensor([[7, 1]]))
    out.loss.backward()
    assert all(p.grad is not None for n, p in lora.named_parameters() if p.requires_grad)
    with pytest.raises(UserInputError, match="adapter_rank"):
        wrap_student(base, -1, ("q",))


def test_pretraining_batches_mix_span_corruption_with_tagged_translation():
    from transformers import ByT5Tokenizer

    from mmkd.models.zoo import sentinel_ids, span_corruption_batch, translation_sampler

    tok = ByT5Tokenizer()
    sample = translation_sampler(tok, seed=0, max_len=96)
    pairs = sample(random.Random(0), 6)
    assert len(pairs) == 6
    for inp, tgt in pairs:
        text = tok.decode(inp)
        assert text.startswith("<2") and text[4:6] == "> " and tok.decode(tgt)
    encoded = [tok(line, add_special_tokens=False)["input_ids"] for line in CORPUS]
    inputs, labels = span_corruption_batch(
        encoded, random.Random(0), sentinel_ids(tok), 4, 0.15, 3.0, tok.eos_token_id, tok.pad_token_id, pairs
    )
    assert inputs.shape[0] == labels.shape[0] == 10
    last = inputs[-1][inputs[-1] != tok.pad_token_id].tolist()
    assert last == [*pairs[-1][0], tok.eos_token_id]  # the pairs follow the corrupted lines, whole
