"""A teacher is finetuned by the trial's recipe: a finetune killed mid-way resumes from its last
checkpoint in the build folder and ends with the weights and loss of an uninterrupted one."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import ByT5Tokenizer, T5ForConditionalGeneration

from mmkd import config
from mmkd.distill import teacher
from mmkd.models.zoo import tiny_config

pytestmark = pytest.mark.integration

OVERRIDES = ["task.n_train=16", "task.n_dev=2", "task.languages=[te]", "teacher.steps=5",
             "teacher.checkpoint_every=2", "teacher.batch_size=4", "teacher.aux_translation=0.5",
             "train.max_source_len=48", "train.max_target_len=32", "stop.wlr=null"]  # fmt: skip


class _Killed(Exception):
    pass


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """An untrained tiny model with dropout (a resume must restore the random generators too)."""
    root = tmp_path_factory.mktemp("base") / "s"
    torch.manual_seed(0)
    model_config = tiny_config("s")
    model_config.dropout_rate = 0.1
    T5ForConditionalGeneration(model_config).save_pretrained(root)
    ByT5Tokenizer().save_pretrained(root)
    return root


def test_a_killed_teacher_finetune_resumes_from_its_checkpoint(tmp_path, monkeypatch, base):
    monkeypatch.setattr(teacher, "evaluation", lambda work, sweep: {})  # the dev evaluation is not at stake
    sweep = config.load("quickstart", OVERRIDES)
    monkeypatch.setenv("MMKD_CACHE", str(tmp_path / "whole"))
    whole_steps: list[int] = []
    whole = teacher.ensure_teacher(tmp_path / "a", "s", str(base), sweep, lambda s, _: whole_steps.append(s))

    def killed_at_step_4(step, loss):
        if step == 4:
            raise _Killed

    monkeypatch.setenv("MMKD_CACHE", str(tmp_path / "killed"))
    with pytest.raises(_Killed):
        teacher.ensure_teacher(tmp_path / "b", "s", str(base), sweep, killed_at_step_4)
    partial = tmp_path / "killed" / "teachers" / f".{whole.name}.partial"
    assert (partial / "checkpoint").is_dir()  # the build folder kept its checkpoint of step 2
    resumed_steps: list[int] = []
    resumed = teacher.ensure_teacher(
        tmp_path / "b", "s", str(base), sweep, lambda s, _: resumed_steps.append(s)
    )

    assert whole_steps == [1, 2, 3, 4, 5] and resumed_steps == [3, 4, 5]  # from the checkpoint, not step 1
    assert resumed.name == whole.name and not (resumed / "checkpoint").exists() and not partial.exists()
    a, b = (load_file(str(d / "model.safetensors")) for d in (whole, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    stats = [json.loads((d / teacher.DONE_FILE).read_text()) for d in (whole, resumed)]
    assert stats[0]["final_loss"] == stats[1]["final_loss"]
    original = load_file(str(base / "model.safetensors"))
    assert any(not torch.equal(original[k], a[k]) for k in a)  # it trained
