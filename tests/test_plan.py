"""The sweep plan: shapes match the published models, the activation estimate matches what autograd
keeps, every shipped sweep plans, and a sweep that fits no GPU is refused with one line (exit 2)."""

from pathlib import Path

import pytest
import torch

from mmkd import config, plan
from mmkd.cli import main
from mmkd.errors import UserInputError
from mmkd.models.families import FAMILIES, Shape, get_family

SWEEPS = sorted((Path(__file__).resolve().parent.parent / "mmkd" / "sweeps").glob("*.yaml"))
IMPOSSIBLE = [
    "--set",
    "search.teacher=[xxl]",
    "--set",
    "resources.gpu_memory_gb=24",
    "--set",
    "resources.workers=1",
]


def _shape_params(shape: Shape, untied: bool) -> int:
    """Parameters of an encoder-decoder of this shape (attention, feed-forward, embedding)."""
    inner = shape.heads * shape.d_kv
    ff = shape.d_ff * shape.d_model * (3 if shape.gated else 2)
    attention = 4 * shape.d_model * inner
    layers = shape.encoder_layers * (attention + ff) + shape.decoder_layers * (2 * attention + ff)
    return layers + shape.vocab * shape.d_model * (2 if untied else 1)


@pytest.mark.parametrize("family", [f for f in FAMILIES.names() if f != "tiny"])
def test_each_shape_gives_the_published_parameter_count(family):
    fam = get_family(family)
    for size in fam.sizes:
        assert size.shape is not None
        untied = size.embedding > size.shape.vocab * size.shape.d_model * 1.01
        assert _shape_params(size.shape, untied) == pytest.approx(size.params, rel=0.05), size.name


def _saved_bytes(model: torch.nn.Module, batch: int, src: int, tgt: int, vocab: int) -> int:
    """Bytes autograd keeps for the backward pass of one training forward (parameters excluded)."""
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    torch.manual_seed(0)
    ids, labels = torch.randint(5, vocab, (batch, src)), torch.randint(5, vocab, (batch, tgt))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=labels)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in kept.items() if ptr not in params)


def test_the_activation_estimate_is_at_or_a_little_above_what_autograd_keeps():
    from transformers import T5Config, T5ForConditionalGeneration

    from mmkd.models.zoo import tiny_config

    tiny = get_family("tiny").size("s").shape
    assert tiny is not None
    # mT5's block (gated GELU, dropout 0.1, d_kv x heads != d_model) at a small width and vocabulary
    mt5 = Shape(256, 704, 2, 3, 8, 32, 2000, gated=True)
    mt5_config = T5Config(
        vocab_size=2000, d_model=256, d_ff=704, d_kv=32, num_heads=8, num_layers=2, num_decoder_layers=3,
        feed_forward_proj="gated-gelu", dropout_rate=0.1, decoder_start_token_id=0, pad_token_id=0,
        eos_token_id=1,
    )  # fmt: skip
    for shape, model_config, (batch, src, tgt) in [
        (tiny, tiny_config("s"), (4, 128, 96)),
        (mt5, mt5_config, (3, 256, 32)),
    ]:
        real = _saved_bytes(T5ForConditionalGeneration(model_config).train(), batch, src, tgt, shape.vocab)
        estimate = plan.activation_bytes(shape, batch, src, tgt, value_bytes=4)
        assert 0.95 <= estimate / real <= 1.35, (shape, estimate / real)


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_every_shipped_sweep_plans(path, capsys):
    assert main(["sweep", "plan", str(path)]) == 0
    out = capsys.readouterr().out
    sweep = config.load(path)
    for t, s in sweep.pairs():
        for rank in sweep.search.adapter_rank:
            assert f"trial {t}:{s} r{rank} " in out
    assert "GPU-hours of the sweep:" in out


def test_a_teacher_that_fits_no_gpu_exits_2_with_one_line_before_ray(capsys, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray started"))
    for command in ("plan", "run"):
        assert main(["sweep", command, "xtreme_r_lowres", *IMPOSSIBLE]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err
        assert "teacher xxl (13.00B parameters" in err and "24.0 GB available" in err, err


def test_auto_shards_a_trial_that_does_not_fit_a_replica_and_the_error_names_the_layout_that_fits():
    base = ["search.teacher=[xl]", "search.student=[base]", "search.adapter_rank=[0]", "resources.gpu=1"]
    sweep = config.load("xtreme_r_lowres", [*base, "resources.gpu_memory_gb=12", "resources.workers=4"])
    job = plan.plan(sweep).jobs[-1]
    assert job.label == "trial xl:base r0"
    assert job.memory("ddp").total > 12e9 >= job.memory("fsdp").total
    assert job.strategy == "fsdp" and job.workers == 4
    # sharding divides weights, gradients and optimiser state; the activations of a worker's batch share
    # (but for the MMKD heads, replicated outside FSDP)
    heads = 8 * job.whole.replicated_trained
    assert job.memory("fsdp", 4).optimizer == pytest.approx(
        (job.memory("ddp", 1).optimizer - heads) / 4 + heads
    )
    assert job.memory("ddp", 4).activations == pytest.approx(job.memory("ddp", 1).activations / 4)
    one_gpu = config.load("xtreme_r_lowres", [*base, "resources.gpu_memory_gb=12", "resources.strategy=ddp"])
    trial = plan.trial_job(one_gpu, "xl", "base", 0, 12e9, plan.ASSUMED_TOKENS_PER_S)
    message = plan.misfit_message(trial, 12e9)
    assert message.startswith("plan: student base (0.58B parameters, trained in full) needs ")
    assert "(ddp, 1 worker), 12.0 GB available" in message
    # 28.8 GB: the sweep's parallel-input mode adds the student's second encoder pass (20.9 GB without)
    # over 3 workers 13.9 GB: mT5's embeddings and output projection (0.38B parameters, FSDP's root unit)
    # stay gathered for the whole step, with their whole gradient (3.1 GB)
    assert message.endswith("fsdp over 4 workers would fit (resources.strategy=fsdp, resources.workers=4)")


def test_a_sweep_under_fsdp_is_planned_not_refused(capsys):
    """fsdp runs (mmkd.sharding): a sweep whose trials are sharded passes the check, planned so."""
    overrides = ["resources.strategy=fsdp", "resources.workers=2"]
    checked = plan.check(config.load("quickstart", overrides))
    assert checked is not None
    trials = [j for j in checked.jobs if j.label.startswith("trial ")]
    assert trials and {(j.strategy, j.workers) for j in trials} == {("fsdp", 2)}
    assert main(["sweep", "plan", "quickstart", *(arg for o in overrides for arg in ("--set", o))]) == 0
    assert "fsdp x2" in capsys.readouterr().out
    fp16 = [arg for o in [*overrides, "train.mixed_precision=fp16"] for arg in ("--set", o)]
    assert main(["sweep", "plan", "quickstart", *fp16]) == 2
    assert "runs under fsdp, which mmkd runs in fp32 or bf16 only" in capsys.readouterr().err


def test_a_teacher_on_train_workers_is_planned_like_a_trial_and_the_error_names_its_setting():
    base = ["search.teacher=[xl]", "resources.gpu=1", "resources.gpu_memory_gb=40"]
    alone = plan.plan(config.load("xtreme_r_lowres", base)).jobs[0]
    assert alone.label == "teacher xl" and alone.single == "1 process" and alone.strategy == "ddp"
    assert alone.peak > 40e9  # 3.7B parameters: 59 GB of fp32 weights, gradients and AdamW state alone
    # 45.3 GB over 3 workers, 36.5 over 4: mT5-xl's embeddings and output projection (1.02B parameters,
    # FSDP's root unit) stay gathered for the whole step, with their whole gradient (8.2 GB)
    assert plan.misfit_message(alone, 40e9).endswith("(resources.strategy=fsdp, teacher.workers=4)")
    workers = plan.plan(config.load("xtreme_r_lowres", [*base, "teacher.workers=4"])).jobs[0]
    assert workers.single is None and workers.workers == 4 and workers.strategy == "fsdp"
    assert workers.peak <= 40e9
    # trials keep their own layout (resources.workers: 0, in their Tune actors)
    assert {j.single for j in plan.plan(config.load("xtreme_r_lowres", base)).jobs[1:]} == {"in-actor"}


def test_lora_counts_match_peft_on_a_tiny_student():
    from transformers import T5ForConditionalGeneration

    from mmkd.models import wrap_student
    from mmkd.models.zoo import tiny_config

    family = get_family("tiny")
    shape = family.size("m").shape
    assert shape is not None
    student = wrap_student(T5ForConditionalGeneration(tiny_config("m")), 8, family.lora_targets)
    trained = sum(p.numel() for p in student.parameters() if p.requires_grad)
    assert plan.lora_params(shape, 8, len(family.lora_targets)) == trained


def test_fsdp_for_teachers_alone_leaves_the_trials_in_their_actors():
    sweep = config.load("quickstart", ["resources.strategy=fsdp", "teacher.workers=2"])
    jobs = plan.plan(sweep).jobs
    assert {(j.strategy, j.workers, j.single) for j in jobs if j.label.startswith("teacher ")} == {
        ("fsdp", 2, None)
    }
    assert {(j.strategy, j.single) for j in jobs if j.label.startswith("trial ")} == {("ddp", "in-actor")}
    with pytest.raises(UserInputError, match=r"set resources\.workers or teacher\.workers"):
        config.load("quickstart", ["resources.strategy=fsdp"])
