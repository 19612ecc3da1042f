"""Checkpoints: an exact round trip of trainable tensors, optimiser and random generators, and clear
errors when damaged."""

import json
import random

import pytest
import torch

from mmkd import checkpoint


def _model_and_opt(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model[0].requires_grad_(False)  # frozen base: must not be saved
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    return model, opt


def test_round_trip_restores_trainable_tensors_and_optimizer(tmp_path):
    model, opt = _model_and_opt(0)
    path = checkpoint.save(tmp_path / "ckpt", {"student": model}, opt, {"step": 7})
    fresh, fresh_opt = _model_and_opt(1)
    meta = checkpoint.load(path, {"student": fresh}, fresh_opt)
    assert meta["step"] == 7 and set(meta) == {"step", "rng"}
    assert torch.equal(fresh[1].weight, model[1].weight)
    assert not torch.equal(fresh[0].weight, model[0].weight)  # frozen tensors are not in the checkpoint
    a, b = opt.state_dict(), fresh_opt.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid, state in a["state"].items():
        for k, v in state.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["state"][pid][k]))


def test_load_weights_restores_the_trainable_tensors_without_an_optimizer(tmp_path):
    model, opt = _model_and_opt(0)
    path = checkpoint.save(tmp_path / "ckpt", {"student": model}, opt, {"step": 7})
    fresh, _ = _model_and_opt(1)
    checkpoint.load_weights(path, {"student": fresh})
    assert torch.equal(fresh[1].weight, model[1].weight)
    assert not torch.equal(fresh[0].weight, model[0].weight)
    with pytest.raises(checkpoint.CheckpointError, match="does not match"):
        checkpoint.load_weights(path, {"student": torch.nn.Linear(2, 2)})


def test_a_damaged_optimizer_file_leaves_the_modules_untouched(tmp_path):
    model, opt = _model_and_opt(0)
    path = checkpoint.save(tmp_path / "ckpt", {"student": model}, opt, {"step": 1})
    (path / checkpoint.OPTIM_FILE).write_bytes(b"garbage")
    fresh, fresh_opt = _model_and_opt(1)
    before = fresh[1].weight.clone()
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        checkpoint.load(path, {"student": fresh}, fresh_opt)
    assert torch.equal(fresh[1].weight, before)


def test_damaged_or_mismatched_checkpoints_raise_checkpoint_error(tmp_path):
    model, opt = _model_and_opt(0)
    path = checkpoint.save(tmp_path / "ckpt", {"student": model}, opt, {"step": 1})
    (path / checkpoint.MODEL_FILE).write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        checkpoint.load(path, {"student": model}, opt)
    (path / checkpoint.MODEL_FILE).unlink()
    with pytest.raises(checkpoint.CheckpointError, match="missing"):
        checkpoint.load(path, {"student": model}, opt)
    other = torch.nn.Linear(2, 2)
    path = checkpoint.save(tmp_path / "ckpt2", {"student": model}, opt, {"step": 1})
    with pytest.raises(checkpoint.CheckpointError, match="does not match"):
        checkpoint.load(path, {"student": other}, torch.optim.AdamW(other.parameters()))


def test_an_optimizer_with_other_parameter_groups_is_refused_before_any_module_is_filled(tmp_path):
    # A checkpoint from before the heads had their own group (distill.heads_lr) must not half-load.
    model, opt = _model_and_opt(0)
    path = checkpoint.save(tmp_path / "ckpt", {"student": model}, opt, {"step": 1})
    fresh, _ = _model_and_opt(1)
    weight, bias = fresh[1].weight, fresh[1].bias
    two_groups = torch.optim.AdamW([{"params": [weight]}, {"params": [bias], "lr": 0.5}], lr=1e-2)
    before = weight.detach().clone()
    with pytest.raises(checkpoint.CheckpointError, match=r"does not match the optimiser.*\[2\].*\[1, 1\]"):
        checkpoint.load(path, {"student": fresh}, two_groups)
    assert torch.equal(fresh[1].weight, before)


def test_the_random_generators_come_back_as_they_were_at_the_save(tmp_path):
    model, opt = _model_and_opt(0)
    random.seed(3)
    torch.manual_seed(3)
    path = checkpoint.save(tmp_path / "ckpt", {"student": model}, opt, {"step": 1})
    after_save = (random.random(), torch.rand(4), torch.nn.functional.dropout(torch.ones(8), 0.5))
    random.seed(99)
    torch.manual_seed(99)
    meta = checkpoint.load(path, {"student": model}, opt)
    meta["rng"].restore()
    again = (random.random(), torch.rand(4), torch.nn.functional.dropout(torch.ones(8), 0.5))
    assert again[0] == after_save[0]
    assert torch.equal(again[1], after_save[1]) and torch.equal(again[2], after_save[2])


def test_a_checkpoint_without_random_states_still_loads(tmp_path):
    # Written before the generators were saved: the trial resumes as it did then, not from scratch.
    model, opt = _model_and_opt(0)
    path = checkpoint.save(tmp_path / "ckpt", {"student": model}, opt, {"step": 2})
    (path / checkpoint.RNG_FILE).unlink()
    state = json.loads((path / checkpoint.META_FILE).read_text())
    del state["rng_python"]
    (path / checkpoint.META_FILE).write_text(json.dumps(state))
    assert checkpoint.load(path, {"student": model}, opt) == {"step": 2, "rng": None}


def _trial_dir(tmp_path):
    """A trial folder as Tune keeps it: its last two checkpoints, steps 10 and 20."""
    models = {}
    for n, step in ((1, 10), (2, 20)):
        model, opt = _model_and_opt(step)
        checkpoint.save(
            tmp_path / f"checkpoint_{n:06d}" / "checkpoint", {"student": model}, opt, {"step": step}
        )
        models[step] = model
    return tmp_path / "checkpoint_000002", models


def _damage(ckpt, how):
    if how == "truncated weights":
        data = (ckpt / checkpoint.MODEL_FILE).read_bytes()
        (ckpt / checkpoint.MODEL_FILE).write_bytes(data[: len(data) // 2])
    elif how == "missing state.json":
        (ckpt / checkpoint.META_FILE).unlink()
    elif how == "truncated state.json":
        (ckpt / checkpoint.META_FILE).write_text('{"step": 20, "optim')
    elif how == "state.json without the optimiser":
        (ckpt / checkpoint.META_FILE).write_text('{"step": 20}')
    elif how == "missing random states":
        (ckpt / checkpoint.RNG_FILE).unlink()
    elif how in ("weights of another save", "optimiser of another save"):
        # a kill while Tune copied a checkpoint over an older one of the same name: whole files of two
        # saves of the same shapes side by side
        name = checkpoint.MODEL_FILE if how.startswith("weights") else checkpoint.OPTIM_FILE
        other = ckpt.parent.parent / "checkpoint_000001" / "checkpoint" / name
        (ckpt / name).write_bytes(other.read_bytes())
    else:
        (ckpt / checkpoint.OPTIM_FILE).write_bytes(b"")


@pytest.mark.parametrize(
    "how",
    [
        "truncated weights",
        "missing state.json",
        "truncated state.json",
        "state.json without the optimiser",
        "missing random states",
        "empty optimiser",
        "weights of another save",
        "optimiser of another save",
    ],
)
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys, how):
    latest, models = _trial_dir(tmp_path)
    _damage(latest / "checkpoint", how)
    fresh, opt = _model_and_opt(99)
    meta, resumed_from = checkpoint.restore(latest, "checkpoint", {"student": fresh}, opt)
    assert meta is not None and meta["step"] == 10
    assert resumed_from == "checkpoint_000001 (step 10; checkpoint_000002 unreadable)"
    assert torch.equal(fresh[1].weight, models[10][1].weight)
    assert "checkpoint_000002" in capsys.readouterr().err


def test_restore_says_where_it_started(tmp_path, capsys):
    latest, models = _trial_dir(tmp_path)
    fresh, opt = _model_and_opt(99)
    assert checkpoint.restore(None, "checkpoint", {"student": fresh}, opt) == (None, "")
    meta, resumed_from = checkpoint.restore(latest, "checkpoint", {"student": fresh}, opt)
    assert meta is not None and meta["step"] == 20 and resumed_from == "checkpoint_000002 (step 20)"
    assert torch.equal(fresh[1].weight, models[20][1].weight)
    for n in (1, 2):
        _damage(tmp_path / f"checkpoint_{n:06d}" / "checkpoint", "missing state.json")
    assert checkpoint.restore(latest, "checkpoint", {"student": fresh}, opt) == (
        None,
        "step 0 (checkpoint_000002, checkpoint_000001 unreadable)",
    )
    assert "restarting this trial from step 0" in capsys.readouterr().err
