"""The teacher-output cache as a sweep prepares it: shards as parallel Ray tasks, then a merge, giving the
file one process computes."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import ByT5Tokenizer, T5ForConditionalGeneration

from mmkd.config import load
from mmkd.distill.cache import ensure_cache, shard_dir
from mmkd.models.zoo import tiny_config
from mmkd.sweep.runner import Experiment, _cache_tasks


@pytest.fixture(scope="module")
def ray_cpus():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def test_shards_in_parallel_tasks_merge_into_the_one_process_cache(ray_cpus, tmp_path):
    import ray

    torch.manual_seed(0)
    teacher = tmp_path / "teacher"
    T5ForConditionalGeneration(tiny_config("s")).save_pretrained(teacher)
    ByT5Tokenizer().save_pretrained(teacher)
    overrides = ["task.n_train=150", "train.max_source_len=64", "train.max_target_len=32"]
    sharded = load("quickstart", [*overrides, "distill.cache_shards=2"])  # 3 batches of 64: 2 shards
    exp = Experiment(tmp_path / "runs", "shards")
    path = ray.get(_cache_tasks(sharded, exp, {"s": str(teacher)})["s"])
    one = ensure_cache(teacher, load("quickstart", [*overrides, "distill.cache_shards=1"]), tmp_path / "one")
    assert path.endswith(one.name)  # the same key
    merged, reference = load_file(path), load_file(str(one))
    assert set(merged) == set(reference)
    assert all(torch.equal(merged[k], reference[k]) for k in reference)
    assert merged["sentence"].shape[0] == 150
    assert not shard_dir(one).exists() and not shard_dir(exp.mmkd / "teacher-cache" / one.name).exists()
