"""The typed sweep schema: ``load(path, overrides) -> SweepConfig``. All validation lives here.

A sweep YAML names a task and its languages, a model family, the search space and budget, the
distillation settings, training, stopping, resources and storage. Every mistake — an unknown key, a wrong
type, an impossible value — raises ``UserInputError`` with one line naming the key path and the bad
value, before Ray starts or anything downloads::

    my_sweep.yaml: search.lr.low: must be > 0 (got -0.001)
    my_sweep.yaml: unknown key search.lrr (did you mean 'lr'?)

Overrides (``--set train.max_steps=50``) are parsed as YAML scalars and applied before validation.
A sweep is a path, or the name of a sweep shipped as package data in ``mmkd/sweeps/`` (``quickstart``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mmkd import names
from mmkd.errors import UserInputError
from mmkd.registry import did_you_mean

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

SHIPPED_SWEEPS = resources.files("mmkd") / "sweeps"

PositiveInt = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0)]
AuxShare = Annotated[float, Field(ge=0, lt=1)]
AUX_TRANSLATION = (
    "Share of each batch that is tagged translation pairs between the task's languages, from its training "
    "records (mmkd/data/translation.py); 0 = English task examples only."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class TaskConfig(_Strict):
    name: str = Field("builtin/cldr", description="Task name from the task registry (`mmkd data show`).")
    languages: list[str] | None = Field(
        None, min_length=1, description="Evaluation languages besides the source; default: all of the task's."
    )
    n_train: PositiveInt = Field(2000, description="Source-language training examples.")
    n_dev: PositiveInt = Field(
        48, description="Dev examples per language, evaluated every `eval_every` steps."
    )
    n_test: PositiveInt | None = Field(None, description="Test examples per language (default: the task's).")
    seed: int = Field(0, description="Seed of the generated data.")
    data_dir: str | None = Field(
        None, description="Local copy of a hub task's data (xtreme_r/*), for machines without the hub."
    )
    parallel_source: Literal["translate_train", "flores", "tatoeba"] | None = Field(
        None,
        description="Translations for parallel-input mode (distill.parallel) of an xtreme_r task that has "
        "none: translate_train (its translate-train data, by id), or a parallel corpus, flores (FLORES-200 "
        "dev) or tatoeba, whose pairs the encoder-side levels then read; null: the task's own "
        "(mmkd/data/parallel.py).",
    )


class ZooConfig(_Strict):
    """Pretraining of the offline tiny family (mmkd/models/zoo.py); every field is part of the cache key,
    in this order, so a changed setting builds another model and every sweep shares an unchanged one."""

    steps: PositiveInt = 600
    batch_size: PositiveInt = 32
    lr: PositiveFloat = 3e-3
    warmup_steps: Annotated[int, Field(ge=0)] = 50
    max_len: PositiveInt = Field(96, description="Tokens (bytes) kept of each corpus line.")
    noise_density: float = Field(0.15, gt=0, lt=1, description="Share of tokens masked.")
    mean_span: float = Field(3.0, ge=1, description="Mean length of a masked span.")
    seed: int = Field(0, description="Seed of the corpus and of the pretraining.")
    corpus_lines: PositiveInt = Field(1500, description="Corpus lines per language.")
    translation_share: float = Field(
        0.75,
        ge=0,
        lt=1,
        description="Share of each pretraining batch that is tagged translation between the built-in "
        "task's languages (its training records only); the rest is span corruption.",
    )


class FamilyConfig(_Strict):
    name: str = Field("tiny", description="Model family (tiny, mt5, byt5, nllb, mbart50).")
    zoo: ZooConfig = ZooConfig()
    ratio_basis: Literal["non_embedding", "total"] = Field(
        "non_embedding",
        description="Parameters `ratio` counts: non_embedding (Kaplan et al. 2020) or total; both are "
        "reported (`ratio`, `ratio_total`).",
    )


class LogRange(_Strict):
    low: PositiveFloat
    high: PositiveFloat
    log: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> LogRange:
        if self.low > self.high:
            raise ValueError(f"low must be <= high (got low={self.low}, high={self.high})")
        return self


class SearchConfig(_Strict):
    num_samples: PositiveInt = Field(8, description="Trials in the sweep.")
    seed: int = Field(0, description="Seed of Optuna's TPE sampler.")
    n_startup_trials: PositiveInt = Field(4, description="Random trials before TPE models the space.")
    lr: LogRange | PositiveFloat | Annotated[list[PositiveFloat], Field(min_length=1)] = Field(
        LogRange(low=1e-4, high=1e-2),
        description="Learning rate: a range, one value, or a list to choose from (with grid: every cell "
        "gets every listed rate, so the control and MMKD are selected from the same rates).",
    )
    adapter_rank: list[Annotated[int, Field(ge=0)]] = Field(
        [0, 8], min_length=1, description="LoRA ranks to choose from; 0 = full finetuning."
    )
    teacher: list[str] = Field(["l"], min_length=1, description="Teacher sizes of the family.")
    student: list[str] = Field(["xs", "s", "m"], min_length=1, description="Student sizes of the family.")
    distill: dict[str, LogRange | Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)]] = (
        Field(
            {},
            description="Searched distillation settings: a range or a list of choices per key, e.g. token.",
        )
    )
    aux_translation: list[AuxShare] | None = Field(
        None,
        min_length=1,
        description="Auxiliary translation shares to choose from (compare with and without it, e.g. "
        "[0, 0.1]); null = train.aux_translation for every trial.",
    )
    method: list[str] = Field(
        ["mmkd"],
        min_length=1,
        description="Training methods to compare (METHODS): none = task loss only (the control), "
        "token = token-level KD only, mmkd = the sweep's distillation weights; reported as `method`.",
    )
    grid: bool = Field(
        False,
        description="Give every cell (teacher:student pair x adapter rank x method) the same number of "
        "trials, num_samples / cells; Optuna then searches only lr and distill.* within the cells.",
    )
    metric: str = Field(names.SCORE, description="The objective reported by trials (and ASHA's metric).")
    mode: Literal["max", "min"] = "max"
    objectives: dict[str, Literal["max", "min"]] | None = Field(
        None,
        min_length=1,
        description="Metrics Optuna optimises together (a Pareto front), e.g. {eval/score: max, "
        "eval/low_resource/wlr: min}; default: {metric: mode}.",
    )
    storage: str | None = Field(
        None,
        description="Optuna storage URL of the sweep's study (an RDB, e.g. postgresql://user@host/db); "
        "default: the journal file <storage>/<name>/mmkd/optuna.journal.",
    )

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError("must be a database URL such as postgresql://user@host/db or sqlite:///path.db")
        return value

    def directions(self) -> dict[str, Literal["max", "min"]]:
        """What Optuna optimises: ``objectives``, or the single ``metric`` and ``mode``."""
        return dict(self.objectives) if self.objectives else {self.metric: self.mode}

    @field_validator("method")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in METHODS:
                raise ValueError(
                    f"unknown method {name!r}{did_you_mean(name, list(METHODS))}; known: {', '.join(METHODS)}"
                )
        if len(set(value)) != len(value):
            raise ValueError(f"lists a method twice (got {value})")
        return value


# The loss terms each training method keeps (the weights come from ``distill``); None = every term.
METHODS: dict[str, tuple[str, ...] | None] = {"none": (), "token": ("token",), "mmkd": None}


class ConfirmConfig(_Strict):
    """The confirm stage (mmkd/sweep/confirm.py): per cell the searched configuration with the best dev
    score is retrained with fresh seeds and evaluated on the test split of every language."""

    seeds: PositiveInt = Field(3, description="Seeds per confirmed cell (train.seed + 1, + 2, ...).")
    select_on: Literal["source", "target"] = Field(
        "source",
        description="Dev score that picks each cell's configuration: source = the source language's "
        "(XTREME-R's zero-shot protocol), target = the search objective (zero-shot languages).",
    )


Weight = Annotated[float, Field(ge=0)]


class DistillConfig(_Strict):
    """MMKD: the weight of each loss term (0 = off) and how the teacher is consulted."""

    temperature: PositiveFloat = Field(2.0, description="Softmax temperature of token-level KD.")
    task: Weight = Field(1.0, description="Task cross-entropy.")
    token: Weight = Field(1.0, description="Token level: KL to the teacher's decoder distribution (top-k).")
    word: Weight = Field(0.0, description="Word level: aligned field vectors, contrastive (or MSE).")
    sentence: Weight = Field(0.0, description="Sentence level: BYOL on pooled encoder states.")
    structure: Weight = Field(0.0, description="Structure level: KL of in-batch similarity matrices.")
    triplet: Weight = Field(0.0, description="Triplet KD (Oki et al. 2020), an optional extra term.")
    word_loss: Literal["contrastive", "mse"] = "contrastive"
    word_temperature: PositiveFloat = Field(
        0.1, description="Word level, contrastive: temperature of the InfoNCE cosine similarities."
    )
    structure_temperature: PositiveFloat = Field(
        1.0, description="Structure level: temperature of the in-batch similarity distributions."
    )
    heads_lr: PositiveFloat | None = Field(
        None,
        description="Learning rate of the distillation heads (word projection, BYOL MLPs), scheduled like "
        "the student's; null = the trial's lr.",
    )
    top_k: PositiveInt = Field(16, description="Teacher logits kept per target token.")
    parallel: bool = Field(
        True, description="Encoder-side levels see the student on a translation of the teacher's input."
    )
    cache: bool = Field(
        True, description="Read teacher outputs from the sweep's cache instead of running it."
    )
    cache_shards: PositiveInt = Field(
        4,
        description="Shards of the teacher-output cache, computed in parallel by one preparation task each "
        "(one GPU each when trials use GPUs) and merged: at most this many GPUs cut the cache's wall time "
        "by up to this factor, each shard loading the teacher once; a finished shard survives a kill. "
        "The cache is the same file whatever the count.",
    )

    def for_method(self, method: str) -> DistillConfig:
        """These settings with the loss terms ``method`` does not use switched off (task stays)."""
        kept = METHODS[method]
        if kept is None:
            return self
        return self.model_copy(update={level: 0.0 for level in DISTILL_LEVELS if level not in kept})


DISTILL_LEVELS = ("token", "word", "sentence", "structure", "triplet")


SEARCHABLE_DISTILL = ("temperature", "word_temperature", "structure_temperature", "task", *DISTILL_LEVELS)


class TeacherConfig(_Strict):
    """Finetuning of each teacher size on the source-language task (once per sweep, cached)."""

    steps: PositiveInt = 400
    lr: PositiveFloat = 2e-3
    batch_size: PositiveInt = 32
    aux_translation: AuxShare = Field(0.0, description=AUX_TRANSLATION)
    weight_decay: Annotated[float, Field(ge=0)] = Field(0.01, description="AdamW's weight decay.")
    checkpoint_every: PositiveInt = Field(
        50,
        description="Steps between checkpoints of the finetuning (a killed finetune resumes from the last).",
    )
    workers: Annotated[int, Field(ge=0)] | None = Field(
        None,
        description="0 = each teacher is finetuned by one process in a preparation task; N >= 1 = by a Ray "
        "Train run of N workers (the trials' recipe and strategy: resources.strategy, one GPU each when "
        "resources.gpu > 0); null = resources.workers.",
    )

    def content(self) -> dict[str, Any]:
        """The settings that shape the finetuned weights (the teacher's content hash): not the checkpoint
        cadence or the worker count (the batches are the same), and ``weight_decay`` only away from its
        default, so teachers finetuned before it was a setting keep their hash."""
        default = type(self).model_fields["weight_decay"].default
        unhashed = {"checkpoint_every", "workers"}
        unhashed |= {"weight_decay"} if self.weight_decay == default else set()
        return self.model_dump(exclude=unhashed)


# At most this many warmup steps, else a tenth of the steps, in a teacher's finetuning.
TEACHER_MAX_WARMUP = 50


class LAPTConfig(_Strict):
    """Language-adaptive pretraining (Chau & Smith 2021; mmkd/models/lapt.py): before distillation the
    student continues span-corruption pretraining on the task's unlabelled text in these languages."""

    steps: PositiveInt = Field(description="Pretraining steps (every weight of the student is updated).")
    languages: str | list[str] = Field(
        "targets", description="Languages of the text; targets = the task's languages but the source."
    )
    lr: PositiveFloat = Field(1e-3, description="Peak learning rate (linear warmup, cosine decay).")
    batch_size: PositiveInt = 16
    noise_density: float = Field(0.15, gt=0, lt=1, description="Share of tokens masked.")
    mean_span: float = Field(3.0, ge=1, description="Mean length of a masked span.")

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str) and value != "targets":
            raise ValueError("must be 'targets' or a list of language codes")
        if isinstance(value, list) and not value:
            raise ValueError("must name at least one language")
        return value


class TrainConfig(_Strict):
    max_steps: PositiveInt = Field(200, description="Optimiser steps per trial.")
    batch_size: PositiveInt = 32
    aux_translation: AuxShare = Field(0.0, description=AUX_TRANSLATION)
    grad_accum: PositiveInt = Field(1, description="Micro-batches per optimiser step.")
    eval_every: PositiveInt = Field(50, description="Evaluate and report every N steps.")
    checkpoint_every_s: Annotated[float, Field(ge=0)] = Field(
        0.0,
        description="Checkpoint at an evaluation only once this many seconds have passed since the trial's "
        "last checkpoint; the last step always checkpoints. 0 = at every evaluation.",
    )
    warmup_steps: Annotated[int, Field(ge=0)] = 20
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    max_source_len: PositiveInt = Field(128, description="Tokens (bytes for ByT5) kept of each input.")
    max_target_len: PositiveInt = Field(96, description="Tokens kept of each target.")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = Field(
        "auto", description="auto = bf16 on a GPU that supports it, else full precision."
    )
    seed: int = 0
    lapt: LAPTConfig | None = Field(None, description="Language-adaptive pretraining first; null = off.")

    def checkpoint_due(self, step: int, seconds_since_checkpoint: float) -> bool:
        """Whether the evaluation at ``step`` also checkpoints. Checkpointing less often than evaluating
        matters at scale: Tune forces an experiment snapshot, O(trials), whenever a trial has checkpointed
        ``num_to_keep`` times since the last one (BENCHMARKS.md)."""
        return step >= self.max_steps or seconds_since_checkpoint >= self.checkpoint_every_s


class EvalConfig(_Strict):
    max_new_tokens: PositiveInt = 96
    batch_size: PositiveInt = 64
    no_repeat_ngram: Annotated[int, Field(ge=0)] = Field(
        0,
        description="Greedy decoding never repeats a sequence of this many tokens (transformers' "
        "no_repeat_ngram_size): cuts degenerate loops short; 0 = off. Set it above the longest repeat "
        "in the task's references, or correct answers are blocked too.",
    )
    tau: float = Field(0.3, gt=0, lt=1, description="LID probability below which an output is undetermined.")
    langid: str = Field("fasttext", description="Language-ID backend.")


class WLRStopConfig(_Strict):
    """Stop trials that drift into the wrong language (see mmkd/sweep/stopping.py)."""

    metric: str = Field(names.LOW_RESOURCE_WLR, description="A WLR metric the trials report.")
    threshold: float = Field(0.5, ge=0, le=1, description="Stop above this WLR (a floor in rung mode).")
    grace_evals: Annotated[int, Field(ge=0)] = Field(1, description="Evaluations before the rule applies.")
    mode: Literal["absolute", "rung"] = "absolute"
    quantile: float = Field(0.75, gt=0, lt=1, description="rung mode: stop above this quantile of peers.")
    min_peers: PositiveInt = Field(3, description="rung mode: peers needed at a step before judging.")


class ASHAConfig(_Strict):
    """Asynchronous successive halving on the objective (Tune's ASHAScheduler)."""

    grace_evals: PositiveInt = Field(1, description="Evaluations every trial gets before it can be cut.")
    reduction_factor: float = Field(3, gt=1)


class StopConfig(_Strict):
    wlr: WLRStopConfig | None = Field(None, description="Wrong-language stopping; null = off.")
    asha: ASHAConfig | None = Field(None, description="ASHA on search.metric; null = off.")


class ResourcesConfig(_Strict):
    cpu: PositiveFloat = Field(1, description="CPUs per trial (per worker when workers >= 1).")
    gpu: Annotated[float, Field(ge=0)] = Field(
        0, description="GPUs per trial (per worker when workers >= 1; fractions allowed)."
    )
    max_concurrent: PositiveInt | None = Field(None, description="Default: as many as the cluster fits.")
    workers: Annotated[int, Field(ge=0)] = Field(
        0,
        description="0 = each trial trains inside its Tune actor; N >= 1 = each trial is a Ray Train run of "
        "N workers (mmkd/sweep/train_run.py), train.batch_size split between them.",
    )
    strategy: Literal["auto", "ddp", "fsdp"] = Field(
        "auto",
        description="How workers share a model: ddp = a replica each, fsdp = parameters, gradients and "
        "optimiser state sharded; auto = ddp when a replica fits resources.gpu_memory_gb, else fsdp.",
    )
    worker_failures: Annotated[int, Field(ge=-1)] = Field(
        2,
        description="Restarts of a trial's Train run after one of its workers is lost (workers >= 1), each "
        "from the trial's last checkpoint; -1 = unlimited, 0 = the trial fails with its first lost worker.",
    )
    gpu_memory_gb: PositiveFloat | None = Field(
        None,
        description="Memory of one GPU (GB); `mmkd sweep plan` and every sweep refuse a trial or teacher "
        "that does not fit it. null = not checked.",
    )
    tokens_per_s: PositiveFloat | None = Field(
        None,
        description="Measured training tokens/s of one GPU on a 1B-parameter model, for the plan's "
        "GPU-hours (scaled by compute per token to other sizes); null = the plan's assumed A100 figure.",
    )


class SimulateConfig(_Strict):
    """Scale simulation (`mmkd sweep run --simulate`): trials follow a synthetic learning-curve and cost
    model (mmkd/sweep/simulate.py) instead of training; Tune, Optuna, stopping and storage stay real."""

    enabled: bool = Field(False, description="Run simulated trials (no models, teachers or data loaded).")
    step_seconds: Annotated[float, Field(ge=0)] = Field(
        0.05, description="Simulated seconds of a training step of a student the teacher's size (/ ratio)."
    )
    eval_seconds: Annotated[float, Field(ge=0)] = Field(
        0.5, description="Simulated seconds of an evaluation of a student the teacher's size (/ ratio)."
    )


class SweepConfig(_Strict):
    name: str = Field("sweep", pattern=r"^[A-Za-z0-9_.-]+$", description="Experiment name under storage.")
    storage: str = Field(
        "runs", description="Directory that holds experiments; on a cluster, a path every node mounts (NFS)."
    )
    task: TaskConfig = TaskConfig()
    family: FamilyConfig = FamilyConfig()
    search: SearchConfig = SearchConfig()
    distill: DistillConfig = DistillConfig()
    teacher: TeacherConfig = TeacherConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    stop: StopConfig = StopConfig()
    resources: ResourcesConfig = ResourcesConfig()
    simulate: SimulateConfig = SimulateConfig()
    confirm: ConfirmConfig | None = Field(
        None, description="Confirm stage after the search (or later: `mmkd sweep confirm`); null = none."
    )

    def teacher_workers(self) -> int:
        """Ray Train workers of a teacher's finetuning (0: one process in a preparation task)."""
        return self.resources.workers if self.teacher.workers is None else self.teacher.workers

    @model_validator(mode="after")
    def _consistent(self) -> SweepConfig:
        if "://" in self.storage:
            raise _KeyError(
                "storage",
                "object-store URIs are not supported yet (mmkd writes teachers and "
                "caches with file I/O); mount shared storage (NFS/EFS) and give its path",
                self.storage,
            )
        if self.resources.strategy == "fsdp" and self.resources.workers == 0 == self.teacher_workers():
            raise _KeyError(
                "resources.strategy",
                "fsdp shards a model between Ray Train workers: set resources.workers or teacher.workers "
                ">= 1",
                "fsdp",
            )
        if self.resources.gpu > 1 and not float(self.resources.gpu).is_integer():
            raise _KeyError("resources.gpu", "above 1 it must be a whole number of GPUs", self.resources.gpu)
        if self.train.eval_every > self.train.max_steps:
            raise _KeyError(
                "train.eval_every",
                f"must be <= train.max_steps ({self.train.max_steps})",
                self.train.eval_every,
            )
        self._check_models()
        self._check_task()
        self._check_searched_distill()
        self._check_grid()
        if self.confirm is not None and self.simulate.enabled:
            raise _KeyError("confirm", "simulated trials evaluate no test split: set it to null", "...")
        from mmkd.eval.langid import LANGID_BACKENDS

        if self.eval.langid not in LANGID_BACKENDS:
            names = LANGID_BACKENDS.names()
            raise _KeyError(
                "eval.langid",
                f"unknown backend{did_you_mean(self.eval.langid, names)}; known: {', '.join(names)}",
                self.eval.langid,
            )
        return self

    def _check_searched_distill(self) -> None:
        for key, space in self.search.distill.items():
            if key not in SEARCHABLE_DISTILL:
                raise _KeyError(
                    f"search.distill.{key}",
                    f"not a searchable distillation setting"
                    f"{did_you_mean(key, SEARCHABLE_DISTILL)}; searchable: {', '.join(SEARCHABLE_DISTILL)}",
                    key,
                )
            # Trials apply searched values without validating them again: a choice of 0 for a temperature
            # must fail here, not in every trial that draws it.
            for value in (space.low, space.high) if isinstance(space, LogRange) else space:
                try:
                    DistillConfig.model_validate({key: value})
                except ValidationError as e:
                    msg = e.errors()[0]["msg"].replace("Input should be", "must be")
                    raise _KeyError(f"search.distill.{key}", msg, value) from None

    def _check_models(self) -> None:
        from mmkd.models import FAMILIES, get_family

        if self.family.name not in FAMILIES:
            names = FAMILIES.names()
            raise _KeyError(
                "family.name",
                f"unknown family{did_you_mean(self.family.name, names)}; known: {', '.join(names)}",
                self.family.name,
            )
        family = get_family(self.family.name)
        sizes = [s.name for s in family.sizes]
        for key in ("teacher", "student"):
            for name in getattr(self.search, key):
                if name not in sizes:
                    raise _KeyError(
                        f"search.{key}",
                        f"family {family.name!r} has no size"
                        f"{did_you_mean(name, sizes)}; sizes: {', '.join(sizes)}",
                        name,
                    )
        if not self.pairs():
            raise _KeyError(
                "search",
                "no teacher is larger than any student, so no ratio > 1 can be realised "
                f"(teacher={self.search.teacher}, student={self.search.student})",
                None,
            )

    def _check_grid(self) -> None:
        if not self.search.grid:
            return
        points = len(self.cells()) * (len(self.search.lr) if isinstance(self.search.lr, list) else 1)
        if self.search.num_samples % points:
            raise _KeyError(
                "search.num_samples",
                f"with search.grid it must be a multiple of the {points} grid points (teacher:student pairs "
                "x adapter ranks x methods, the control once per student and rank; x listed learning rates)",
                self.search.num_samples,
            )

    def cells(self) -> list[tuple[str, int, str]]:
        """Every (``teacher:student``, adapter rank, method) the grid gives trials. The control (``none``)
        reads no teacher, so it has one cell per student and adapter rank (under the student's first
        pair), the control of every teacher's cell (mmkd.curves.gain pairs them)."""
        cells = [
            (f"{t}:{s}", rank, method)
            for t, s in self.pairs()
            for rank in self.search.adapter_rank
            for method in self.search.method
        ]
        controls: dict[tuple[str, int], tuple[str, int, str]] = {}
        for pair, rank, method in cells:
            if method == "none":
                controls.setdefault((pair.split(":")[1], rank), (pair, rank, method))
        return [cell for cell in cells if cell[2] != "none" or cell in controls.values()]

    def _check_task(self) -> None:
        from mmkd.data import get_task

        try:
            task = get_task(self.task.name, **self.task_options())
        except UserInputError as e:
            raise _KeyError("task", str(e), None) from None
        self._check_aux_translation(task)
        if self.task.parallel_source in ("flores", "tatoeba") and not self.distill.parallel:
            raise _KeyError(
                "task.parallel_source",
                "a parallel corpus is only read in parallel-input mode: set distill.parallel: true",
                self.task.parallel_source,
            )
        if self.stop.wlr is not None:
            _check_wlr_metric(self.stop.wlr.metric, task)
        lapt = self.train.lapt
        if lapt is not None and lapt.languages != "targets":
            for lang in lapt.languages:
                if lang not in task.languages:
                    raise _KeyError(
                        "train.lapt.languages",
                        f"not a language of task {task.name}{did_you_mean(lang, task.languages)}; "
                        f"its languages: {' '.join(task.languages)}",
                        lang,
                    )

    def _check_aux_translation(self, task: Any) -> None:
        searched = [
            ("search.aux_translation", self.train.batch_size, s) for s in self.search.aux_translation or []
        ]
        for key, batch_size, share in [
            ("train.aux_translation", self.train.batch_size, self.train.aux_translation),
            ("teacher.aux_translation", self.teacher.batch_size, self.teacher.aux_translation),
            *searched,
        ]:
            if not share:
                continue
            if not 0 < round(batch_size * share) < batch_size:
                raise _KeyError(
                    key, f"leaves no room in a batch of {batch_size} for both the task and translation", share
                )
            from mmkd.data.translation import TranslationPairs

            try:
                TranslationPairs(task, task.languages)
            except UserInputError as e:
                raise _KeyError(key, str(e), None) from None

    def task_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "n_train": self.task.n_train,
            "n_dev": self.task.n_dev,
            "seed": self.task.seed,
        }
        for key in ("languages", "n_test", "data_dir", "parallel_source"):
            if getattr(self.task, key) is not None:
                options[key] = getattr(self.task, key)
        return options

    def pairs(self) -> list[tuple[str, str]]:
        """Every (teacher, student) pair of the space with a teacher larger than its student."""
        from mmkd.models import get_family

        family = get_family(self.family.name)
        return [
            (t, s)
            for t in self.search.teacher
            for s in self.search.student
            if family.size(t).params > family.size(s).params
        ]


def _check_wlr_metric(metric: str, task: Any) -> None:
    """The stopping rule must read a WLR the trials report: a language's, the zero-shot group's, or the
    task's low-resource group under the name it reports it by (mmkd.data.xtreme_r)."""
    low = task.low_resource_name
    known = [names.ZERO_SHOT_WLR, *([names.key(low, names.WLR)] if task.low_resource else [])]
    known += [names.key(lang, names.WLR) for lang in task.languages]
    if metric in known:
        return
    why = "not a WLR the trials report"
    if metric == names.LOW_RESOURCE_WLR:
        why = (
            f"task {task.name} reports no low_resource group (no Joshi class 0-2 language among its languages"
        )
        why += f"; its lowest class, {' '.join(task.low_resource)}, is {low})" if task.low_resource else ")"
    raise _KeyError("stop.wlr.metric", f"{why}; one of: {', '.join(known)}", metric)


class _KeyError(ValueError):
    """A cross-field error that knows its key path (pydantic would put it at the root)."""

    def __init__(self, key: str, message: str, value: Any) -> None:
        super().__init__(message)
        self.key, self.message, self.value = key, message, value


def shipped_sweeps() -> dict[str, Traversable]:
    """The sweeps installed with mmkd (package data), by name: found from a wheel as from a checkout."""
    return {f.name.removesuffix(".yaml"): f for f in SHIPPED_SWEEPS.iterdir() if f.name.endswith(".yaml")}


def resolve_path(sweep: str | Path) -> Path | Traversable:
    """A YAML path, or the name of a shipped sweep (``quickstart``)."""
    path = Path(sweep)
    if path.is_file():
        return path
    shipped = shipped_sweeps()
    if not path.suffix and str(sweep) in shipped:
        return shipped[str(sweep)]
    names = sorted(shipped)
    raise UserInputError(
        f"{sweep}: no such sweep file{did_you_mean(str(sweep), names)}; shipped: {', '.join(names)}"
    )


def load(sweep: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SweepConfig:
    path = resolve_path(sweep)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserInputError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    except UnicodeDecodeError:
        raise UserInputError(f"{path}: not a text file (not UTF-8)") from None
    # An empty file would otherwise be a complete sweep of defaults and launch trials: nearly always a
    # wrong path or an unsaved editor buffer, so it is refused like any other malformed file.
    if raw is None or raw == {}:
        raise UserInputError(
            f"{path}: the sweep file is empty; give at least one key "
            "(`mmkd sweep validate quickstart` prints a whole sweep)"
        )
    if not isinstance(raw, dict):
        raise UserInputError(f"{path}: the top level must be a mapping of keys (got {type(raw).__name__})")
    raw.setdefault("name", Path(path.name).stem)
    for item in overrides:
        apply_override(raw, item)
    return from_dict(raw, source=str(path))


def from_dict(raw: dict[str, Any], source: str = "config") -> SweepConfig:
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as e:
        raise UserInputError(f"{source}: {_describe(e)}") from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to the nested dict ``raw``."""
    key, sep, value = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserInputError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. train.max_steps=50")
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserInputError(f"--set {item!r}: {part} is a value, not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError:
        raise UserInputError(f"--set {item!r}: value is not valid YAML") from None


def _describe(error: ValidationError) -> str:
    """One line for the first error: key path, what is wrong, the bad value."""
    errors = error.errors()
    # For a union (``lr: 0.01`` or ``lr: {low, high}``) pydantic reports one error per member; the
    # "wrong kind of value" ones are noise next to a member that matched the kind but not the range.
    specific = [e for e in errors if e["type"] not in {"model_type", "model_attributes_type", "dict_type"}]
    err = (specific or errors)[0]
    loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "constrained-"))]
    # pydantic reports union members as extra path parts (e.g. "LogRange", "float"); drop them.
    loc = [p for p in loc if not p[:1].isupper() and p not in {"float", "int", "str", "list[str]"}]
    path = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        known = _known_keys(loc[:-1])
        return f"unknown key {path}{did_you_mean(loc[-1], known)}; known keys here: {', '.join(known)}"
    if err["type"] == "value_error" and isinstance(err.get("ctx", {}).get("error"), _KeyError):
        inner: _KeyError = err["ctx"]["error"]
        shown = "" if inner.value is None else f" (got {inner.value!r})"
        return f"{inner.key}: {inner.message}{shown}"
    msg = err["msg"].removeprefix("Value error, ")
    if msg.startswith("Input should be"):
        msg = "must be" + msg.removeprefix("Input should be")
    return f"{path}: {msg} (got {err.get('input')!r})"


def _known_keys(loc: list[str]) -> list[str]:
    model: type[BaseModel] = SweepConfig
    for part in loc:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        # An optional section (``lapt: LAPTConfig | None``) lists the keys of its model.
        annotation = next((a for a in get_args(annotation) if isinstance(a, type)), annotation)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return sorted(model.model_fields)


def dump(config: SweepConfig) -> str:
    """The resolved config as YAML (what ``mmkd sweep validate`` prints and the sweep stores)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


# ---------------------------------------------------------------------------------------------------
# One trial
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artefacts:
    """What a sweep prepares before its trials (mmkd.sweep.runner.prepare_artefacts), by size: each
    model's directory or hub id, each finetuned teacher's directory, each teacher's output cache."""

    models: dict[str, str] = field(default_factory=dict)
    teachers: dict[str, str] = field(default_factory=dict)
    teacher_cache: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialConfig:
    """Everything one run of the training recipe (mmkd.trial.Recipe) reads, resolved: built by
    ``TrialConfig.build`` from the searched values, the sweep and its artefacts (a trial), or by
    ``TrialConfig.teacher_finetune`` (a teacher: the task loss alone, no evaluation)."""

    lr: float
    adapter_rank: int
    teacher: str
    student: str
    teacher_params: int
    student_params: int
    ratio: float
    ratio_total: float
    method: str
    stage: str
    aux_translation: float
    distill: DistillConfig
    train: TrainConfig  # the sweep's, with this trial's seed (a trial's sweep.train is the same)
    sweep: SweepConfig
    student_model: str  # directory or hub id the student starts from
    teacher_model: str | None = None  # the finetuned teacher (None: no teacher, the task loss alone)
    teacher_cache: str | None = None  # its outputs on the training set, when ``distill.cache``
    evaluates: bool = True  # dev evaluation at every report (teacher finetuning reports losses only)
    workers: int = 0  # Ray Train workers running this recipe (0: in the Tune actor; mmkd.sweep.train_run)
    strategy: str = "in-actor"  # how they share the model: ddp, fsdp, or in-actor

    @classmethod
    def build(cls, searched: Mapping[str, Any], sweep: SweepConfig, artefacts: Artefacts) -> TrialConfig:
        """A trial from what Tune passes it (``searched``: mmkd.sweep.space's values and constants, or a
        confirm plan's entry, whose ``seed`` replaces ``train.seed``). Searched ``distill.<key>`` values
        replace the sweep's, and the ``method`` drops the loss terms it leaves out."""
        teacher, student = str(searched["teacher"]), str(searched["student"])
        method = str(searched.get("method", "mmkd"))
        overrides = {k.removeprefix("distill."): v for k, v in searched.items() if k.startswith("distill.")}
        train = sweep.train.model_copy(update={"seed": int(searched.get("seed", sweep.train.seed))})
        sweep = sweep.model_copy(update={"train": train})
        return cls(
            lr=float(searched["lr"]),
            adapter_rank=int(searched["adapter_rank"]),
            teacher=teacher,
            student=student,
            teacher_params=int(searched["teacher_params"]),
            student_params=int(searched["student_params"]),
            ratio=float(searched["ratio"]),
            ratio_total=float(searched.get("ratio_total", searched["ratio"])),
            method=method,
            stage=str(searched.get("stage", "search")),
            aux_translation=float(searched.get("aux_translation", sweep.train.aux_translation)),
            distill=sweep.distill.model_copy(update=overrides).for_method(method),
            train=train,
            sweep=sweep,
            student_model=artefacts.models.get(student, ""),
            teacher_model=artefacts.teachers.get(teacher),
            teacher_cache=artefacts.teacher_cache.get(teacher) if sweep.distill.cache else None,
        )

    @classmethod
    def teacher_finetune(cls, sweep: SweepConfig, base: str) -> TrialConfig:
        """A teacher's finetuning (``sweep.teacher``): the model in full on the task loss alone (the
        method ``none``) with ``teacher.aux_translation`` pairs in its batches, checkpointing every
        ``teacher.checkpoint_every`` steps, without dev evaluation (the teacher is evaluated once, after).
        It is no trial: the pair, parameter counts and ratio are placeholders nothing reports."""
        settings = sweep.teacher
        train = TrainConfig(
            max_steps=settings.steps,
            batch_size=settings.batch_size,
            aux_translation=settings.aux_translation,
            eval_every=min(settings.checkpoint_every, settings.steps),
            warmup_steps=min(TEACHER_MAX_WARMUP, settings.steps // 10),
            weight_decay=settings.weight_decay,
            max_source_len=sweep.train.max_source_len,
            max_target_len=sweep.train.max_target_len,
            mixed_precision=sweep.train.mixed_precision,
            seed=sweep.train.seed,
        )
        return cls(
            lr=settings.lr,
            adapter_rank=0,
            teacher="",
            student="teacher",
            teacher_params=0,
            student_params=0,
            ratio=1.0,
            ratio_total=1.0,
            method="none",
            stage="teacher",
            aux_translation=settings.aux_translation,
            distill=DistillConfig().for_method("none"),
            train=train,
            sweep=sweep,
            student_model=base,
            evaluates=False,
        )
