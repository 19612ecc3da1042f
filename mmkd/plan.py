"""The plan of a sweep before anything starts: will each trial and each teacher fit a GPU, how, at what cost.

    mmkd sweep plan sweeps/xtreme_r_lowres.yaml --set resources.gpu_memory_gb=40 --set resources.workers=2

Offline, no weights loaded: parameter counts and shapes come from the family registry
(mmkd/models/families.py), the distillation heads are built on the meta device. ``sweep run`` and
``sweep submit`` call ``check`` first, so a sweep that cannot fit exits 2 before Ray starts.

**The memory model** (bytes of one worker, i.e. of one GPU; an estimate that errs high — its activation
term is 0-22% above the tensors autograd keeps in a real forward, tests/test_plan.py):

- weights: 4 per parameter of every model the worker holds (loaded in fp32; Accelerate's mixed
  precision keeps fp32 master weights and casts per operation);
- gradients 4 and AdamW's two moments 8 per *trained* parameter (the whole student when the adapter rank
  is 0, else its LoRA matrices; the distillation heads);
- ddp: all of the above on every worker, plus DDP's gradient buckets (another 4 per trained parameter);
  fsdp: the student's share divided by the workers, plus what stays whole (``Whole``): two transformer
  blocks gathered (the one computing and the one prefetched), the root unit (mmkd.sharding: embeddings
  and output projection), gathered for the whole step with its whole gradient when trained, and what is
  never sharded — the MMKD heads (with their gradients and AdamW state) and a live teacher;
- activations of the worker's share of a micro-batch (``train.batch_size / workers``, padded to
  ``max_source_len`` / ``max_target_len``), stored for the backward pass, per layer after Korthikanti et
  al. 2022 (no recomputation): ``activation_bytes``; 2 bytes a value in bf16/fp16, 4 in fp32;
- a reserve of 1.5 GB: the CUDA context and the allocator's fragmentation.

A live teacher (``distill.cache: false``) adds its fp32 weights; with the cache the trials never load it.
Teachers are finetuned by ``mmkd.distill.teacher`` with the trials' recipe and precision, AdamW over
every parameter: in one process, or on ``teacher.workers`` Train workers (ddp or fsdp, as trials).

**GPU-hours** count training tokens (padded lengths, every step: early stopping only lowers them) at
6 FLOPs per trained parameter and token (4 with an adapter: no weight gradients of the frozen base) plus 2
per parameter of a live teacher, converted with ``resources.tokens_per_s`` (measured tokens/s of one GPU
training a 1B-parameter model) or, without it, an assumed A100: 312 bf16 TFLOP/s at 40% utilisation,
20,800 tokens/s at 1B. Evaluation (generation) is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from mmkd.config import SweepConfig
from mmkd.errors import UserInputError
from mmkd.models.families import ModelSize, Shape, get_family

GB = 1e9
RESERVE_BYTES = 1.5 * GB
ASSUMED_TOKENS_PER_S = 312e12 * 0.40 / 6e9  # tokens/s of a 1B model on an A100 at 40% utilisation
Strategy = Literal["ddp", "fsdp"]


@dataclass(frozen=True)
class Memory:
    """Bytes one worker holds, by kind."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    reserve: float = RESERVE_BYTES

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.reserve


@dataclass(frozen=True)
class Whole:
    """Parameters a worker holds whole under fsdp besides its shards."""

    block: int  # of one transformer block (two are gathered: the one computing, the one prefetched)
    root: int  # of FSDP's root unit (embeddings, output projection), gathered for the whole step
    root_trained: int  # of those, trained (0 with an adapter): their whole gradient too
    replicated: int = 0  # never sharded: the MMKD heads, a live teacher
    replicated_trained: int = 0  # of those, trained (the heads)


@dataclass(frozen=True)
class Job:
    """One thing that trains: a trial of a (teacher, student, adapter rank) cell, or a teacher finetune."""

    label: str
    model: str  # what must fit, as the error names it: "teacher xxl (13.00B parameters, ...)"
    held: int  # every parameter a worker holds
    trained: int  # those with gradients and optimiser state
    whole: Whole  # what fsdp does not divide between the workers
    activations: float  # bytes at the whole micro-batch: a worker keeps its share
    workers: int
    strategy: Strategy
    gpu_seconds: float  # of one run at the planned throughput
    runs: float  # how many times it runs in the sweep (its share of the trials, confirm seeds)
    setting: str  # the setting of its worker count: resources.workers (trials) or teacher.workers
    single: str | None  # its layout without Train workers ("in-actor", "1 process"); None: it uses them

    def memory(self, strategy: Strategy, workers: int | None = None) -> Memory:
        n = self.workers if workers is None else workers
        return worker_memory(self.held, self.trained, self.activations / n, self.whole, strategy, n)

    @property
    def peak(self) -> float:
        return self.memory(self.strategy).total


@dataclass(frozen=True)
class Plan:
    sweep: SweepConfig
    jobs: list[Job]
    gpu_memory: float | None  # bytes available to one worker; None = not checked
    tokens_per_s: float
    throughput_source: str
    notes: list[str] = field(default_factory=list)

    @property
    def gpu_hours(self) -> float:
        return sum(j.gpu_seconds * j.runs for j in self.jobs) / 3600

    def misfits(self) -> list[Job]:
        if self.gpu_memory is None:
            return []
        return [j for j in self.jobs if j.peak > self.gpu_memory]


# ---------------------------------------------------------------------------------------------------
# The memory model
# ---------------------------------------------------------------------------------------------------


def lora_params(shape: Shape, rank: int, targets: int) -> int:
    """LoRA matrices of ``rank`` on ``targets`` projections (q, v) of every attention block: A (r x d_model)
    and B (inner x r) each."""
    attentions = shape.encoder_layers + 2 * shape.decoder_layers  # decoder: self- and cross-attention
    return attentions * targets * rank * (shape.d_model + shape.heads * shape.d_kv)


def activation_bytes(
    shape: Shape, batch: float, src_len: int, tgt_len: int, value_bytes: int, encoder_passes: int = 1
) -> float:
    """Activations kept for the backward pass of one forward at ``batch`` sequences (Korthikanti et al.
    2022, 'Reducing activation recomputation', Sec. 4.1, generalised to an encoder-decoder: inner attention
    width, gated feed-forward, cross-attention), plus the logits and their fp32 copies for the loss.
    ``encoder_passes`` 2: the student's encoder also reads the translation (``distill.parallel``)."""
    h, inner, b = shape.d_model, shape.heads * shape.d_kv, value_bytes
    # Dropout keeps its mask and the dropped copy: measured 2 (b + 1) bytes a value on CPU (a fused GPU
    # kernel keeps less: the plan errs on the safe side).
    drop = 2 * (b + 1) if shape.dropout else 0

    def attention(q_len: int, kv_len: int) -> float:
        # RMS norm (input, normalised, scale), q/k/v, the output projection's input, its dropout mask;
        # scores: the softmax output and, with dropout, its mask and the dropped copy
        scores = shape.heads * q_len * kv_len * (b + drop)
        return q_len * (b * (3 * h + 4 * inner) + drop * h) + scores

    def feed_forward(length: int) -> float:
        # gated: both input projections' outputs, the tanh-GELU's intermediates (transformers computes it
        # in Python: x, x^3, tanh, ...), their product; else the ReLU's output; dropout masks
        wide = shape.d_ff * (8 if shape.gated else 2)
        return length * (b * (3 * h + wide) + drop * (h + shape.d_ff))

    encoder = encoder_passes * shape.encoder_layers * (attention(src_len, src_len) + feed_forward(src_len))
    decoder = shape.decoder_layers * (
        attention(tgt_len, tgt_len) + attention(tgt_len, src_len) + feed_forward(tgt_len)
    )
    logits = tgt_len * shape.vocab * (b + 4 + 4)  # logits, fp32 log-softmax, its softened (KD) copy
    return batch * (encoder + decoder + logits)


def block_params(shape: Shape) -> int:
    """Parameters of the largest transformer block (a decoder layer): what FSDP gathers at once."""
    inner = shape.heads * shape.d_kv
    return 2 * 4 * shape.d_model * inner + shape.d_ff * shape.d_model * (3 if shape.gated else 2)


def worker_memory(
    held: int, trained: int, activations: float, whole: Whole, strategy: Strategy, workers: int
) -> Memory:
    """Per worker: ``held`` parameters (fp32), ``trained`` of them with gradients and AdamW state."""
    if strategy == "ddp":
        buckets = 4 * trained if workers > 1 else 0  # one process alone is not wrapped in DDP
        return Memory(4 * held, 4 * trained + buckets, 8 * trained, activations)
    shared = (held - whole.replicated) / workers + whole.replicated  # parameters held, shards and whole
    trained_held = (trained - whole.replicated_trained) / workers + whole.replicated_trained
    return Memory(
        4 * (shared + 2 * whole.block + whole.root),
        4 * (trained_held + whole.root_trained),
        8 * trained_held,
        activations,
    )


def choose(ddp_total: float, configured: str, workers: int, available: float | None) -> Strategy:
    """The configured strategy; ``auto``: ddp when a replica fits (or nothing is declared), else fsdp —
    which needs the Train path (workers >= 1)."""
    if configured in ("ddp", "fsdp"):
        return configured  # type: ignore[return-value]
    if available is None or ddp_total <= available or workers == 0:
        return "ddp"
    return "fsdp"


# ---------------------------------------------------------------------------------------------------
# The jobs of a sweep
# ---------------------------------------------------------------------------------------------------


def plan(sweep: SweepConfig) -> Plan:
    """Every teacher finetune and every (teacher, student, adapter rank) of the search space, planned."""
    res = sweep.resources
    available = None
    if res.gpu_memory_gb is not None and res.gpu > 0:
        available = res.gpu_memory_gb * GB * min(1.0, res.gpu)  # a fraction of a GPU: that share of it
    if res.tokens_per_s is not None:
        rate, source = res.tokens_per_s, "declared (resources.tokens_per_s)"
    else:
        rate, source = ASSUMED_TOKENS_PER_S, "assumed: an A100 at 40% of 312 bf16 TFLOP/s"
    notes = []
    if res.gpu_memory_gb is None:
        notes.append("memory not checked: no resources.gpu_memory_gb")
    elif res.gpu == 0:
        notes.append("memory not checked: trials use no GPU (resources.gpu: 0)")
    teachers = sorted({t for t, _ in sweep.pairs()}, key=lambda n: _size(sweep, n).params)
    jobs = [teacher_job(sweep, t, available, rate) for t in teachers]
    jobs += [
        trial_job(sweep, t, s, rank, available, rate)
        for t, s in sweep.pairs()
        for rank in sweep.search.adapter_rank
    ]
    return Plan(sweep, jobs, available, rate, source, notes)


def teacher_job(sweep: SweepConfig, name: str, available: float | None, rate: float) -> Job:
    """A teacher's finetuning (mmkd.distill.teacher): the trials' recipe and precision, in one process or
    on ``teacher.workers`` Train workers (``resources.strategy``, like a trial)."""
    size, cfg, train = _size(sweep, name), sweep.teacher, sweep.train
    shape = _shape(sweep, size)
    workers = sweep.teacher_workers()
    lengths = train.max_source_len + train.max_target_len
    flops = cfg.steps * cfg.batch_size * lengths * 6 * size.params
    if sweep.distill.cache:  # the output cache: one forward over the training set
        flops += sweep.task.n_train * lengths * 2 * size.params
    job = Job(
        label=f"teacher {name}",
        model=f"teacher {name} ({size.params / 1e9:.2f}B parameters, finetuned in full)",
        held=size.params,
        trained=size.params,
        whole=Whole(block_params(shape), size.embedding, size.embedding),
        activations=activation_bytes(
            shape, cfg.batch_size, train.max_source_len, train.max_target_len, _value_bytes(sweep)
        ),
        workers=max(1, workers),
        strategy="ddp",
        gpu_seconds=flops / (rate * 6e9),
        runs=1,
        setting="teacher.workers",
        single="1 process" if workers == 0 else None,
    )
    if workers == 0:
        return job
    strategy = choose(job.memory("ddp").total, sweep.resources.strategy, workers, available)
    return replace(job, strategy=strategy)


def trial_job(
    sweep: SweepConfig, teacher: str, student: str, rank: int, available: float | None, rate: float
) -> Job:
    family, res, train, distill = get_family(sweep.family.name), sweep.resources, sweep.train, sweep.distill
    t, s = _size(sweep, teacher), _size(sweep, student)
    t_shape, s_shape = _shape(sweep, t), _shape(sweep, s)
    encoder_levels = any(getattr(distill, lvl) > 0 for lvl in ("word", "sentence", "structure", "triplet"))
    heads = _heads_params(s_shape.d_model, t_shape.d_model) if encoder_levels else 0
    adapter = s.params if rank == 0 else lora_params(s_shape, rank, len(family.lora_targets))
    live_teacher = 0 if distill.cache else t.params
    lengths = train.max_source_len + train.max_target_len
    tokens = train.max_steps * train.grad_accum * train.batch_size * lengths
    cells = len(sweep.pairs()) * len(sweep.search.adapter_rank)
    confirm = 0 if sweep.confirm is None else sweep.confirm.seeds * len(sweep.search.method)
    job = Job(
        label=f"trial {teacher}:{student} r{rank}",
        model=f"student {student} ({s.params / 1e9:.2f}B parameters"
        + (", trained in full" if rank == 0 else f", LoRA rank {rank}")
        + (f", teacher {teacher} live" if live_teacher else "")
        + ")",
        held=s.params + heads + live_teacher,
        trained=adapter + heads,
        whole=Whole(
            block_params(s_shape), s.embedding, s.embedding if rank == 0 else 0, heads + live_teacher, heads
        ),
        activations=activation_bytes(
            s_shape,
            train.batch_size,
            train.max_source_len,
            train.max_target_len,
            _value_bytes(sweep),
            encoder_passes=2 if encoder_levels and distill.parallel else 1,
        ),
        workers=max(1, res.workers),
        strategy="ddp",
        gpu_seconds=tokens * ((6 if rank == 0 else 4) * s.params + 2 * live_teacher) / (rate * 6e9),
        runs=sweep.search.num_samples / cells + confirm,
        setting="resources.workers",
        single="in-actor" if res.workers == 0 else None,
    )
    if res.workers == 0:  # one process in its Tune actor: nothing to shard
        return job
    strategy = choose(job.memory("ddp").total, res.strategy, res.workers, available)
    return replace(job, strategy=strategy)


def _size(sweep: SweepConfig, name: str) -> ModelSize:
    return get_family(sweep.family.name).size(name)


def _shape(sweep: SweepConfig, size: ModelSize) -> Shape:
    if size.shape is None:
        raise UserInputError(
            f"family {sweep.family.name!r} size {size.name!r} declares no shape: the plan cannot estimate it"
        )
    return size.shape


def _heads_params(student_dim: int, teacher_dim: int) -> int:
    import torch

    from mmkd.distill.losses import MMKDHeads

    with torch.device("meta"):
        return sum(p.numel() for p in MMKDHeads(student_dim, teacher_dim).parameters())


def _value_bytes(sweep: SweepConfig) -> int:
    """Bytes of an activation: ``auto`` is bf16 on a GPU (mmkd.trial._precision), else fp32."""
    precision = sweep.train.mixed_precision
    if precision == "auto":
        return 2 if sweep.resources.gpu > 0 else 4
    return 4 if precision == "no" else 2


# ---------------------------------------------------------------------------------------------------
# Check and show
# ---------------------------------------------------------------------------------------------------


def check(sweep: SweepConfig) -> Plan | None:
    """None for a simulated sweep (it trains nothing); else the plan, or ``UserInputError`` (exit 2)
    naming the first job that fits no GPU: its model, the memory it needs and the memory there is, and
    the layout that would fit when there is one. A trial planned under fsdp runs sharded (mmkd.sharding).
    """
    if sweep.simulate.enabled:
        return None
    p = plan(sweep)
    misfits = p.misfits()  # first: a job that fits no GPU at all says the most
    if misfits:
        raise UserInputError(misfit_message(misfits[0], p.gpu_memory or 0.0))
    sharded = [j for j in p.jobs if j.strategy == "fsdp"]
    if sharded and sweep.train.mixed_precision == "fp16":
        raise UserInputError(
            f"plan: {sharded[0].label} runs under fsdp, which mmkd runs in fp32 or bf16 only (fp16's loss "
            "scaling would need every rank to agree on overflowing gradients): set train.mixed_precision "
            "to bf16, auto or no"
        )
    return p


def misfit_message(job: Job, available: float) -> str:
    return (
        f"plan: {job.model} needs {job.peak / GB:.1f} GB per worker ({job.strategy}, {job.workers} "
        f"worker{'s' if job.workers > 1 else ''}), {available / GB:.1f} GB available "
        f"(resources.gpu_memory_gb){_fitting_layout(job, available)}"
    )


def _fitting_layout(job: Job, available: float) -> str:
    """'; fsdp over N workers would fit ...' with the fewest N that fit."""
    for workers in range(1, 257):
        if job.memory("fsdp", workers).total <= available:
            return (
                f"; fsdp over {workers} workers would fit (resources.strategy=fsdp, {job.setting}={workers})"
            )
    return "; no fsdp layout of up to 256 workers would fit"


def describe(p: Plan) -> str:
    """The plan as a table, one row per job, and the sweep's GPU-hours."""
    sweep, res, train = p.sweep, p.sweep.resources, p.sweep.train
    precision = {2: "16-bit", 4: "fp32"}[_value_bytes(sweep)]
    memory = "not declared" if p.gpu_memory is None else f"{p.gpu_memory / GB:.1f} GB a worker"
    lines = [
        f"plan of {sweep.name} ({sweep.family.name}): batch {train.batch_size} x {train.grad_accum} "
        f"micro-batches, lengths {train.max_source_len}/{train.max_target_len}, {precision} activations; "
        f"GPU memory {memory}; resources.workers {res.workers}, strategy {res.strategy}, "
        f"teacher.workers {sweep.teacher_workers()}",
        f"{'job':<22}{'params':>9}{'trained':>10}{'ddp GB':>9}{'fsdp GB':>9}  {'uses':<12}"
        f"{'GPU-h a run':>12}{'runs':>7}  fits",
    ]
    for j in p.jobs:
        fits = "-" if p.gpu_memory is None else ("yes" if j.peak <= p.gpu_memory else "NO")
        uses = j.single or f"{j.strategy} x{j.workers}"
        lines.append(
            f"{j.label:<22}{_count(j.held):>9}{_count(j.trained):>10}"
            f"{j.memory('ddp').total / GB:>9.1f}{j.memory('fsdp').total / GB:>9.1f}  {uses:<12}"
            f"{j.gpu_seconds / 3600:>12.3g}{j.runs:>7.3g}  {fits}"
        )
    lines.append(
        f"GPU-hours of the sweep: {p.gpu_hours:.3g} (at {p.tokens_per_s:,.0f} training tokens/s of one GPU "
        f"on a 1B model, {p.throughput_source}; padded lengths, every step, evaluation not counted)"
    )
    lines += [f"note: {n}" for n in p.notes]
    return "\n".join(lines)


def _count(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"
