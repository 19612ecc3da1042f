"""Trials that span workers: with ``resources.workers: N >= 1`` each trial is a named Ray Train run.

Ray's documented Tune + Train pattern (Train V2): the Tune trial's function is the run's driver. It
starts a ``TorchTrainer`` of N workers, each running the same Accelerate recipe (``mmkd.trial.run``) with
a ``TrainSession``; Ray Train starts the processes and their process group (gloo on CPU, NCCL on GPU),
Accelerate wraps the student in DDP (``resources.strategy: fsdp``: mmkd.sharding shards it instead), and
``mmkd.ranks`` gives each worker its shard of every batch.
Train's ``TuneReportCallback`` forwards rank 0's reports to Tune, so the searcher, the schedulers and the
results table see a trial as before, with ``workers`` and ``strategy`` in every report.

- The run is named ``<sweep>.<trial folder>`` (``quickstart.s-l-f2590e5b``): the dashboard's Train view
  (its API: ``/api/train/v2/runs/v1``; ``/api/train/v2/runs`` lists Train V1's) lists the trials by
  name, with their workers, status and logs.
- Its checkpoints are Train's (``<sweep>/mmkd/train/<run>/checkpoint_*``); a worker lost mid-trial
  restarts the run from the last one (``FailureConfig``, at most ``resources.worker_failures`` times),
  and a trial that Tune restarts (its driver died, or the sweep resumed) starts a run of the same name,
  which Train restores from the same place.
- The per-example rows go straight to the trial's folder in the sweep's storage, which every node
  mounts (``mmkd_examples/<step>.jsonl``, as in-actor trials leave them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmkd.config import Artefacts, SweepConfig, TrialConfig

TRAIN_DIR = "train"  # under <sweep>/mmkd/: the Train runs' state and checkpoints
DRIVER_CPU = 0.5  # the Tune trial, the run's driver, trains nothing


def run_name(sweep: str, trial_folder: str) -> str:
    return f"{sweep}.{trial_folder}"


def train_trial(config: dict[str, Any], sweep: SweepConfig, artefacts: Artefacts) -> None:
    """The Tune trainable of a sweep with ``resources.workers >= 1``: one Train run, to its end."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from mmkd.sweep.runner import folder_name

    context = tune.get_context()
    folder = folder_name(config["student"], config["teacher"], context.get_trial_id())
    # the live gauges' tags, as in-actor trials set them (mmkd.sweep.telemetry)
    tags = (context.get_experiment_name(), context.get_trial_name())
    trainer(config, sweep, artefacts, folder, [TuneReportCallback()], tags).fit()


def trainer(
    config: dict[str, Any],
    sweep: SweepConfig,
    artefacts: Artefacts,
    folder: str,
    callbacks: list[Any],
    tags: tuple[str, str] | None = None,
) -> Any:
    """The ``TorchTrainer`` of one trial (``folder``: the trial's folder name in the sweep; ``tags``: the
    sweep and trial names its live gauges carry, default the sweep's and the run's)."""
    from mmkd.trial import EXAMPLES_DIR

    name = run_name(sweep.name, folder)
    loop_config = {
        "searched": config,
        "sweep": sweep,
        "artefacts": artefacts,
        "workers": sweep.resources.workers,
        "strategy": strategy(
            sweep, f"trial {config['teacher']}:{config['student']} r{config['adapter_rank']}"
        ),
        "examples_dir": str(Path(sweep.storage) / sweep.name / folder / EXAMPLES_DIR),
        "telemetry_tags": list(tags or (sweep.name, name)),
    }
    return _torch_trainer(worker_loop, loop_config, sweep, name, sweep.resources.workers, callbacks)


def teacher_trainer(sweep: SweepConfig, size: str, base: str, folder: str) -> Any:
    """The ``TorchTrainer`` of a teacher's finetuning (``folder``: the teacher's folder name, which keys
    its content): ``sweep.teacher_workers()`` workers running the trials' recipe on the task loss; the
    run's last checkpoint holds the finetuned model (``teacher_worker_loop``). Started again after a
    kill, a run of the same name resumes from its last checkpoint."""
    name = teacher_run_dir(sweep, folder).name
    workers = sweep.teacher_workers()
    loop_config = {
        "sweep": sweep,
        "base": base,
        "size": size,
        "workers": workers,
        "strategy": strategy(sweep, f"teacher {size}"),
        "telemetry_tags": [sweep.name, name],
    }
    return _torch_trainer(teacher_worker_loop, loop_config, sweep, name, workers, [])


def teacher_run_dir(sweep: SweepConfig, folder: str) -> Path:
    """Where a teacher's Train run keeps its state and checkpoints (removed once the teacher is whole)."""
    return _runs_dir(sweep) / run_name(sweep.name, f"teacher-{folder}")


def _runs_dir(sweep: SweepConfig) -> Path:
    """Train's storage path for the sweep's runs: ``<sweep>/mmkd/train/``."""
    from mmkd.sweep.runner import MMKD_DIR

    return Path(sweep.storage) / sweep.name / MMKD_DIR / TRAIN_DIR


def _torch_trainer(
    loop: Any, loop_config: dict[str, Any], sweep: SweepConfig, name: str, workers: int, callbacks: list[Any]
) -> Any:
    from ray import train
    from ray.train.torch import TorchConfig, TorchTrainer

    # Train V2 records its runs for the dashboard's Train view only when asked (Ray's documented variable)
    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "1")
    res = sweep.resources
    return TorchTrainer(
        loop,
        train_loop_config=loop_config,
        torch_config=TorchConfig(backend="nccl" if res.gpu > 0 else "gloo"),
        scaling_config=train.ScalingConfig(
            num_workers=workers,
            use_gpu=res.gpu > 0,
            resources_per_worker={"CPU": res.cpu, **({"GPU": res.gpu} if res.gpu > 0 else {})},
        ),
        run_config=train.RunConfig(
            name=name,
            storage_path=str(_runs_dir(sweep)),
            callbacks=callbacks,
            failure_config=train.FailureConfig(max_failures=res.worker_failures),
            checkpoint_config=train.CheckpointConfig(num_to_keep=2),
        ),
    )


def strategy(sweep: SweepConfig, label: str) -> str:
    """The strategy of the plan's job ``label`` (``auto``: ddp when a replica fits the GPU)."""
    from mmkd.plan import plan

    return next(j.strategy for j in plan(sweep).jobs if j.label == label)


def worker_loop(config: dict[str, Any]) -> None:
    """One worker of a trial's run: the recipe, reporting to Train."""
    from dataclasses import replace

    from mmkd.trial import run

    trial = TrialConfig.build(config["searched"], config["sweep"], config["artefacts"])
    trial = replace(trial, workers=int(config["workers"]), strategy=str(config["strategy"]))
    run(trial, TrainSession(Path(config["examples_dir"]), tuple(config["telemetry_tags"])))


def teacher_worker_loop(config: dict[str, Any]) -> None:
    """One worker of a teacher's finetuning: the recipe to its last step; then rank 0 saves the model and
    reports it as the run's last checkpoint (the others report their step: Train's reports are
    collective). A run restored at its last step skips straight to that report."""
    import tempfile
    from dataclasses import replace

    from ray import train

    from mmkd.distill.teacher import evaluation
    from mmkd.sweep.runner import _progress
    from mmkd.trial import Recipe

    sweep = config["sweep"]
    trial = TrialConfig.teacher_finetune(sweep, config["base"])
    trial = replace(trial, workers=int(config["workers"]), strategy=str(config["strategy"]))
    main = train.get_context().get_world_rank() == 0
    progress = _progress(f"teacher {config['size']}", sweep.teacher.steps) if main else None
    with tempfile.TemporaryDirectory() as tmp:  # the session's examples folder: a teacher writes none
        recipe = Recipe(trial, TrainSession(Path(tmp), tuple(config["telemetry_tags"])), progress)
        last = recipe.run()
    if not main:
        if recipe.sharded:  # rank 0's saves gather the full weights from every rank: take part
            recipe.save_model(None)
            recipe.save(None)
        train.report({"step": recipe.step})
        return
    metrics = {
        "step": recipe.step,
        "final": 1,
        "train/loss": last.get("train/loss", float("nan")),  # NaN: restored at its last step
        "resumed_from": recipe.resumed_from,
    }
    with tempfile.TemporaryDirectory() as tmp:
        recipe.save_model(Path(tmp))
        recipe.save(Path(tmp))  # a run restored from it starts at its last step
        # Last: the saves above are collective when sharded, and the others wait in the report's barrier
        # (no timeout), not in a collective that could time out while rank 0 generates.
        evaluation(Path(tmp), sweep)  # on this worker's device; kept with the weights, as in one process
        train.report(metrics, checkpoint=train.Checkpoint.from_directory(tmp))


class TrainSession:
    """A worker's ``mmkd.trial.Session``: reports and checkpoints to Ray Train, restores from Train's
    latest checkpoint of the run (every worker loads the same one)."""

    def __init__(self, examples_dir: Path, tags: tuple[str, ...]) -> None:
        self._examples, self._tags = examples_dir, tags

    @contextmanager
    def restored(self) -> Iterator[Path | None]:
        from ray import train

        from mmkd.trial import checkpoint_folder

        with checkpoint_folder(train.get_checkpoint()) as path:
            yield path

    def examples_dir(self) -> Path:
        return self._examples

    def resumed(self, step: int) -> None:
        """Nothing re-sent: Train restores its run's last registered checkpoint itself, and Train's
        reports are collective (what a killed driver's Tune lost of them is not re-sent; README)."""

    def report(self, metrics: dict[str, Any], folder: Path | None) -> None:
        from ray import train

        if len(metrics) > 1:  # rank 0's evaluation (the other ranks report only their step)
            from mmkd.sweep import telemetry

            telemetry.record(metrics, *self._tags)
        checkpoint = None if folder is None else train.Checkpoint.from_directory(str(folder))
        train.report(metrics, checkpoint=checkpoint)
