"""A teacher is finetuned once per content hash in the model cache and copied into each sweep."""

import torch
from safetensors.torch import save_file

from mmkd import config
from mmkd.distill import teacher


def test_a_second_sweep_copies_the_cached_teacher_instead_of_finetuning(tmp_path, monkeypatch):
    monkeypatch.setenv("MMKD_CACHE", str(tmp_path / "cache"))
    calls = []

    def finetune(base, sweep, out_dir, progress=None, **where):
        calls.append(out_dir)
        save_file({"w": torch.ones(2)}, str(out_dir / "model.safetensors"))
        return {"final_loss": 0.0}

    monkeypatch.setattr(teacher, "finetune", finetune)
    monkeypatch.setattr(teacher, "evaluation", lambda work, sweep: {})
    sweep = config.load("quickstart")
    first = teacher.ensure_teacher(tmp_path / "a" / "teachers", "l", "base", sweep)
    second = teacher.ensure_teacher(tmp_path / "b" / "teachers", "l", "base", sweep)
    assert len(calls) == 1  # finetuned once, for the first sweep
    assert first.name == second.name and first != second
    assert (second / "model.safetensors").read_bytes() == (first / "model.safetensors").read_bytes()
    assert (tmp_path / "cache" / "teachers" / first.name / teacher.DONE_FILE).is_file()
    # Another seed is another teacher.
    other = config.load("quickstart", ["train.seed=1"])
    teacher.ensure_teacher(tmp_path / "c" / "teachers", "l", "base", other)
    assert len(calls) == 2
