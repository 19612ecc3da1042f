"""Build, run, resume and inspect a sweep: the thin glue between a SweepConfig and Ray Tune.

    mmkd sweep run quickstart            # local Ray, storage ./runs, name from the YAML
    mmkd sweep resume runs/quickstart                # continue an interrupted sweep
    mmkd sweep status runs/quickstart

Per sweep, once: shared artefacts (tiny zoo if the family needs it, each teacher finetuned on the source
language) are prepared as Ray tasks on the sweep's storage; then ``tune.Tuner`` runs the trials with
``OptunaSearch`` over the define-by-run space; at the end the tidy results table lands under
``<storage>/<name>/mmkd/`` and the best trials are printed.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmkd import config as config_mod
from mmkd import names
from mmkd.atomic import write_text
from mmkd.config import Artefacts, SweepConfig
from mmkd.errors import UserInputError
from mmkd.sweep import stages

MMKD_DIR = "mmkd"
CONFIG_FILE = "config.yaml"
PENDING_ENV = "TUNE_MAX_PENDING_TRIALS_PG"


@dataclass(frozen=True)
class Experiment:
    """Where a sweep lives: ``<storage>/<name>/`` (Tune's experiment dir) and its ``mmkd/`` artefacts."""

    storage: Path
    name: str

    @property
    def path(self) -> Path:
        return self.storage / self.name

    @property
    def mmkd(self) -> Path:
        return self.path / MMKD_DIR

    @classmethod
    def locate(cls, name_or_path: str, storage: str | None = None) -> Experiment:
        """An experiment dir, or a name under ``storage`` (default ``./runs``)."""
        path = Path(name_or_path)
        if not (path / MMKD_DIR / CONFIG_FILE).is_file():
            path = Path(storage or "runs") / name_or_path
        if not (path / MMKD_DIR / CONFIG_FILE).is_file():
            raise UserInputError(
                f"{name_or_path}: no sweep there (looked for {path / MMKD_DIR / CONFIG_FILE})"
            )
        path = path.resolve()
        return cls(path.parent, path.name)


def run(
    sweep: SweepConfig,
    *,
    name: str | None = None,
    storage: str | None = None,
    address: str | None = None,
    callbacks: Sequence[Any] = (),
) -> int:
    """``callbacks``: extra Tune callbacks (the benchmarks time the driver with one)."""
    from mmkd.plan import check
    from mmkd.sweep.study import check_new_study

    check(sweep)  # a trial or teacher that fits no GPU: exit 2 before Ray starts
    exp = Experiment(Path(storage or sweep.storage).resolve(), name or sweep.name)
    _refuse_existing(exp)
    sweep = sweep.model_copy(update={"name": exp.name, "storage": str(exp.storage)})
    check_new_study(sweep, exp.name)
    exp.mmkd.mkdir(parents=True, exist_ok=True)
    # Whole or absent: the config is what makes the folder a sweep that `resume` can finish.
    write_text(exp.mmkd / CONFIG_FILE, config_mod.dump(sweep))
    _init_ray(address)
    return _prepare_and_search(sweep, exp, restore=False, callbacks=callbacks)


def resume(name_or_path: str, *, storage: str | None = None, address: str | None = None) -> int:
    """Finish whatever an interrupted sweep is missing, from any moment: complete artefacts are found,
    partial ones rebuilt; Tune's run is restored, or started under the same name if Tune never saved it."""
    exp = Experiment.locate(name_or_path, storage)
    # Where the sweep is now: a sweep moved or mounted elsewhere since its config was written resumes
    # there (its trials look for their newer checkpoints there: mmkd.catchup).
    located = {"name": exp.name, "storage": str(exp.storage)}
    sweep = config_mod.load(exp.mmkd / CONFIG_FILE).model_copy(update=located)
    _init_ray(address)
    return _prepare_and_search(sweep, exp, restore=_tune_saved(exp))


def _refuse_existing(exp: Experiment) -> None:
    if (exp.mmkd / CONFIG_FILE).is_file():
        raise UserInputError(
            f"sweep {exp.name!r} already exists at {exp.path}; resume it with: mmkd sweep resume {exp.path}"
            " (or pick another --name)"
        )
    # Without a config nothing of a sweep was recorded (killed before it was written); anything else
    # there is not ours to overwrite.
    if exp.path.is_dir() and any(p.name != MMKD_DIR for p in exp.path.iterdir()):
        raise UserInputError(f"{exp.path} exists and is not an mmkd sweep; pick another --name or --storage")


def _tune_saved(exp: Experiment) -> bool:
    """Whether Tune can restore the run; what would make it fail or count a trial twice is set aside."""
    from ray import tune

    from mmkd.sweep.recover import prepare_restore

    return prepare_restore(exp.path, bool(tune.Tuner.can_restore(str(exp.path))))


def _prepare_and_search(
    sweep: SweepConfig, exp: Experiment, *, restore: bool, callbacks: Sequence[Any] = ()
) -> int:
    from ray import tune

    stages.mark(exp.mmkd, stages.PREPARING)
    artefacts = _artefacts(sweep, exp)
    stages.mark(exp.mmkd, stages.SEARCHING)
    if restore:
        tuner = tune.Tuner.restore(
            str(exp.path),
            trainable=_trainable(sweep, artefacts),
            resume_unfinished=True,
            resume_errored=True,
        )
    else:
        tuner = _tuner(sweep, exp, artefacts, callbacks)
    with _pending_trials(sweep), _no_auto_loggers():
        code = _fit(tuner, exp, sweep.search.num_samples)
    if code != 0:
        return code
    stages.mark(exp.mmkd, stages.CONFIRMING)
    code = _confirm_stage(exp, sweep, artefacts)
    if code == 0:
        stages.mark(exp.mmkd, stages.DONE)
    return code


def _confirm_stage(exp: Experiment, sweep: SweepConfig, artefacts: Artefacts) -> int:
    """After a finished search: the confirm stage when the sweep has one (mmkd.sweep.confirm)."""
    from mmkd.sweep.confirm import run_stage, stage_settings

    settings = stage_settings(exp.path, sweep)
    return 0 if settings is None else run_stage(exp.path, sweep, settings, artefacts)


def _init_ray(address: str | None) -> None:
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # Tune's newer console output prints every result in full (~150 metrics a report); the classic
    # reporter shows one status table with the columns that matter (see _reporter).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if address:
        ray.init(address=address)
    else:
        # "local": a Ray of this sweep's own. Without an address ray.init joins the newest cluster that
        # `ray start` left on the machine (/tmp/ray/ray_current_cluster), whoever started it, and the
        # sweep dies with that cluster. Its own processes are told its address for the same reason
        # (Train V2's placement-group cleaner would otherwise ask the newest Ray: addressed_ray).
        from mmkd.sweep.cluster import addressed_ray

        with addressed_ray():
            ray.init(
                address="local",
                include_dashboard=False,
                configure_logging=True,
                logging_level=logging.WARNING,
            )


@contextmanager
def _pending_trials(sweep: SweepConfig) -> Iterator[None]:
    """Let Tune queue as many trials as the cluster has trial slots now, while the sweep runs.

    With a search algorithm, Tune keeps one trial pending at a time: a new trial is proposed only
    once the previous one has its actor, so short trials never fill a cluster (BENCHMARKS.md). As many
    pending trials as free slots fills it at once, and proposes no further ahead of the results than
    the cluster can run anyway. Tune reads the variable
    when ``fit()`` starts; it is removed afterwards so it never reaches another sweep or a child process
    as if the user had set it. The user's own setting wins.
    """
    if PENDING_ENV in os.environ:
        yield
        return
    import ray

    from mmkd.sweep.cluster import trial_footprint

    total, (cpu, gpu) = ray.cluster_resources(), trial_footprint(sweep.resources)
    slots = int(total.get("CPU", 0) // cpu)
    if gpu:
        slots = min(slots, int(total.get("GPU", 0) // gpu))
    res = sweep.resources
    if res.max_concurrent:
        slots = min(slots, res.max_concurrent)
    os.environ[PENDING_ENV] = str(max(1, min(slots, sweep.search.num_samples)))
    try:
        yield
    finally:
        del os.environ[PENDING_ENV]


@contextmanager
def _no_auto_loggers() -> Iterator[None]:
    """Tune adds its CSV and full TensorBoard loggers to the runner's (mmkd.sweep.logs) unless this
    documented variable is set when ``fit()`` starts; restored afterwards, like ``_pending_trials``."""
    from mmkd.sweep.logs import AUTO_LOGGERS_ENV

    previous = os.environ.get(AUTO_LOGGERS_ENV)
    os.environ[AUTO_LOGGERS_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[AUTO_LOGGERS_ENV]
        else:
            os.environ[AUTO_LOGGERS_ENV] = previous


def _artefacts(sweep: SweepConfig, exp: Experiment) -> Artefacts:
    """Re-preparing (on resume) is a cache lookup: zoo and teachers are keyed by content and found on
    disk. A simulated sweep (``simulate.enabled``, kept in the stored config) needs none. The baselines
    are written once the teachers exist, before any trial."""
    if sweep.simulate.enabled:
        return Artefacts()
    if sweep.distill.parallel:
        from mmkd.data import get_task

        # Translations out of reach (hub offline, no local copy) or not matching the training examples
        # are one line and exit 2 now, not after the teachers are finetuned or in every trial.
        task = get_task(sweep.task.name, **sweep.task_options())
        task.parallel_corpus()
        for lang in task.languages:
            task.examples("train", lang)
    artefacts = prepare_artefacts(sweep, exp)
    write_baselines(sweep, exp, artefacts.teachers)
    return artefacts


def write_baselines(sweep: SweepConfig, exp: Experiment, teachers: dict[str, str]) -> Path:
    """``mmkd/baselines.csv``: copy-input, English-answer and each teacher (mmkd.eval.baselines)."""
    from mmkd.data import get_task
    from mmkd.distill.teacher import evaluation
    from mmkd.eval import baselines
    from mmkd.eval.langid import get_langid

    task = get_task(sweep.task.name, **sweep.task_options())
    langid = get_langid(sweep.eval.langid)
    metrics = {size: evaluation(Path(path), sweep) for size, path in teachers.items()}
    table = baselines.baseline_table(task, baselines.dev_sets(task), langid, sweep.eval.tau, metrics)
    return baselines.write_baselines(table, exp.mmkd)


def _trainable(sweep: SweepConfig, artefacts: Artefacts) -> Any:
    from ray import tune

    from mmkd.sweep.cluster import trial_resources

    if sweep.simulate.enabled:
        from mmkd.data import get_task
        from mmkd.sweep.simulate import Languages, simulated_trial

        languages = Languages.of_task(get_task(sweep.task.name, **sweep.task_options()))
        fn = tune.with_parameters(simulated_trial, sweep=sweep, languages=languages)
    elif sweep.resources.workers:
        from mmkd.sweep.train_run import train_trial

        fn = tune.with_parameters(train_trial, sweep=sweep, artefacts=artefacts)
    else:
        from mmkd.trial import tune_trial

        fn = tune.with_parameters(tune_trial, sweep=sweep, artefacts=artefacts)
    return tune.with_resources(fn, trial_resources(sweep.resources))


def _tuner(sweep: SweepConfig, exp: Experiment, artefacts: Artefacts, callbacks: Sequence[Any] = ()) -> Any:
    from ray import tune

    from mmkd.sweep.logs import driver_loggers
    from mmkd.sweep.space import Space, design_points
    from mmkd.sweep.study import StudySearch, TrialSeededTPE, open_storage

    metrics, modes = zip(*sweep.search.directions().items(), strict=True)
    search = StudySearch(
        Space(sweep),
        storage=open_storage(sweep, exp.mmkd),
        study_name=exp.name,
        mmkd_dir=exp.mmkd,
        points_to_evaluate=design_points(sweep) or None,
        # Several objectives: Tune passes lists and Optuna searches for their Pareto front.
        metric=list(metrics) if len(metrics) > 1 else metrics[0],
        mode=list(modes) if len(modes) > 1 else modes[0],
        # Optuna's TPE, seeded per trial so that a resume proposes what an uninterrupted run would.
        sampler=TrialSeededTPE(sweep.search.seed, n_startup_trials=sweep.search.n_startup_trials),
    )
    return tune.Tuner(
        _trainable(sweep, artefacts),
        tune_config=tune.TuneConfig(
            search_alg=search,
            scheduler=_scheduler(sweep),
            num_samples=sweep.search.num_samples,
            max_concurrent_trials=sweep.resources.max_concurrent,
            # One actor runs trial after trial, so trials do not each pay an actor's start-up (BENCHMARKS.md).
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=exp.name,
            storage_path=str(exp.storage),
            failure_config=tune.FailureConfig(max_failures=2),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            # Each trial's working directory (its per-example rows, mmkd.trial) reaches its storage folder.
            sync_config=tune.SyncConfig(sync_artifacts=True),
            stop=_stopper(sweep, exp),
            progress_reporter=_reporter(sweep),
            # mmkd.sweep.logs says what they write; _no_auto_loggers keeps Tune from adding its own.
            callbacks=[*driver_loggers(), *callbacks],
            verbose=1,
        ),
    )


def trial_dirname(trial: Any) -> str:
    """``<student>-<teacher>-<trial id>``, e.g. ``xs-l-f2590e5b``: short, and the same on resume (Tune's
    default is the whole config, cut mid-value, and the start time)."""
    return folder_name(
        trial.config.get("student", "trial"), trial.config.get("teacher", "trial"), trial.trial_id
    )


def folder_name(student: str, teacher: str, trial_id: str) -> str:
    return f"{student}-{teacher}-{trial_id}"


def _reporter(sweep: SweepConfig) -> Any:
    from ray.tune import CLIReporter

    return CLIReporter(
        parameter_columns={"models": "teacher:student", "lr": "lr", "adapter_rank": "rank"},
        metric_columns=metric_columns(sweep),
        max_report_frequency=30,
    )


def metric_columns(sweep: SweepConfig) -> dict[str, str]:
    """The metrics the status tables show, labelled; the objective by the task's metric (``0-shot F1``
    for QA and NER, ``0-shot chrF`` otherwise)."""
    from mmkd.eval.task_metrics import primary_metric

    return {
        names.STEP: "step",
        names.SOURCE_CHRF: "en chrF",
        names.SCORE: names.objective_label(primary_metric(sweep.task.name)),
        names.ZERO_SHOT_WLR: "0-shot WLR",
        names.LOW_RESOURCE_WLR: "low-res WLR",
    }


def _scheduler(sweep: SweepConfig) -> Any:
    from ray.tune.schedulers import ASHAScheduler

    asha = sweep.stop.asha
    if asha is None:
        return None
    return ASHAScheduler(
        time_attr="step",
        metric=sweep.search.metric,
        mode=sweep.search.mode,
        max_t=sweep.train.max_steps,
        grace_period=asha.grace_evals * sweep.train.eval_every,
        reduction_factor=asha.reduction_factor,
    )


def _stopper(sweep: SweepConfig, exp: Experiment) -> Any:
    from mmkd.sweep.stopping import WLRRule, WLRStopper

    cfg = sweep.stop.wlr
    if cfg is None:
        return None
    return WLRStopper(WLRRule(cfg), cfg.metric, exp.mmkd, sweep.train.max_steps)


def _fit(tuner: Any, exp: Experiment, num_samples: int) -> int:
    """Run to the end; 130 when interrupted (Tune saved the state on the first Ctrl-C and returned)."""
    from mmkd.curves.aggregate import trial_status

    tuner.fit()
    stages.mark(exp.mmkd, stages.RESULTS)
    write_results(exp)
    print_best(exp)
    states = trial_status(exp.path)
    finished = sum(s in ("TERMINATED", "ERROR") for s in states.values())
    if finished < num_samples:
        stages.mark(exp.mmkd, stages.SEARCHING)
        print(
            f"\nmmkd: interrupted with {finished}/{num_samples} trials finished; resume with: "
            f"mmkd sweep resume {exp.path}",
            file=sys.stderr,
        )
        return 130
    return 0


# ---------------------------------------------------------------------------------------------------
# Shared artefacts
# ---------------------------------------------------------------------------------------------------


def prepare_artefacts(sweep: SweepConfig, exp: Experiment) -> Artefacts:
    """Model directories (or hub ids) of every size the space uses, and each teacher finetuned once.

    Runs as Ray tasks so the tiny zoo's sizes pretrain in parallel, each teacher starts as soon as its
    base model exists, and its output cache's shards (``_cache_tasks``) as soon as it is finetuned;
    everything is cached by content, so a rerun or resume only looks it up.
    """
    import ray

    from mmkd.models import get_family
    from mmkd.sweep.cluster import prepare_resources
    from mmkd.sweep.train_run import DRIVER_CPU

    family = get_family(sweep.family.name)
    pairs = sweep.pairs()
    sizes = sorted({s for pair in pairs for s in pair}, key=lambda n: -family.size(n).params)
    zoo = sweep.family.zoo
    prep = prepare_resources(sweep.resources)
    build_zoo = ray.remote(_build_zoo_model).options(**prep)
    # A teacher finetuned by Train workers: the task only drives the run, the workers hold the GPUs.
    teach = ray.remote(_prepare_teacher).options(
        **(prep if sweep.teacher_workers() == 0 else {"num_cpus": DRIVER_CPU, "num_gpus": 0})
    )
    models: dict[str, Any] = {}
    for size in sizes:
        source = family.size(size).source
        if source.startswith("zoo:"):
            models[size] = build_zoo.remote(size, zoo)
        else:
            models[size] = source
    teachers = {
        t: teach.remote(str(exp.mmkd / "teachers"), t, models[t], sweep.model_dump(mode="json"))
        for t in sorted({t for t, _ in pairs})
    }
    caches = _cache_tasks(sweep, exp, teachers) if sweep.distill.cache else {}
    return Artefacts(
        models={k: (ray.get(v) if isinstance(v, ray.ObjectRef) else v) for k, v in models.items()},
        teachers={k: ray.get(v) for k, v in teachers.items()},
        teacher_cache={k: ray.get(v) for k, v in caches.items()},
    )


def _cache_tasks(sweep: SweepConfig, exp: Experiment, teachers: dict[str, Any]) -> dict[str, Any]:
    """Per teacher, its output cache's shards as parallel Ray tasks (the resources of any preparation
    task: one GPU each when trials use GPUs), each starting once the teacher is finetuned, then a CPU
    task merging them; the merge's results are the caches' paths."""
    import ray

    from mmkd.distill.cache import cache_rows, shard_ranges
    from mmkd.sweep.cluster import prepare_resources

    prep = prepare_resources(sweep.resources)
    shard = ray.remote(_prepare_cache_shard).options(**prep)
    merge = ray.remote(_merge_cache).options(num_cpus=prep["num_cpus"])  # it only concatenates
    sweep_dict, root = sweep.model_dump(mode="json"), str(exp.mmkd / "teacher-cache")
    rows = len(cache_rows(sweep))
    shards = len(shard_ranges(rows, sweep.distill.cache_shards))
    caches = {}
    for t, ref in teachers.items():
        done = [shard.remote(ref, sweep_dict, root, i, f"cache {t} {i + 1}/{shards}") for i in range(shards)]
        caches[t] = merge.remote(ref, sweep_dict, root, rows, *done)  # starts when every shard is done
    return caches


def _progress(label: str, total: int) -> Any:
    from ray.experimental.tqdm_ray import tqdm

    bar = tqdm(total=total, desc=label)

    def update(step: int, loss: float) -> None:
        bar.update(1)
        if step % 50 == 0 or step == total:
            bar.set_description(f"{label} loss {loss:.3f}")
        if step == total:
            bar.close()

    return update


def _batches(label: str) -> Any:
    """A progress bar over a task's batches, created at its first batch: a shard found whole shows none."""
    from ray.experimental.tqdm_ray import tqdm

    bars: list[Any] = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc=label))
        bars[0].update(1)
        if done == total:
            bars[0].close()

    return update


# The Ray tasks of prepare_artefacts. They become remote there, not with @ray.remote here: importing
# Ray would cost `mmkd sweep status`, which imports this module, about a second.
def _build_zoo_model(size: str, settings: Any) -> str:
    from mmkd.models.zoo import ensure_built

    return str(ensure_built(size, settings, progress=_progress(f"zoo {size}", settings.steps)))


def _prepare_cache_shard(
    teacher_dir: str, sweep_dict: dict[str, Any], root: str, index: int, label: str
) -> None:
    from mmkd.distill.cache import ensure_shard

    ensure_shard(Path(teacher_dir), config_mod.from_dict(sweep_dict), Path(root), index, _batches(label))


def _merge_cache(teacher_dir: str, sweep_dict: dict[str, Any], root: str, rows: int, *shards: None) -> str:
    """``shards``: the shard tasks' (empty) results, passed so that Ray starts the merge after them."""
    from mmkd.distill.cache import ensure_merged

    return str(ensure_merged(Path(teacher_dir), config_mod.from_dict(sweep_dict), Path(root), rows))


def _prepare_teacher(root: str, size: str, base: str, sweep_dict: dict[str, Any]) -> str:
    from mmkd.distill.teacher import ensure_teacher

    sweep = config_mod.from_dict(sweep_dict)
    progress = _progress(f"teacher {size}", sweep.teacher.steps)
    return str(ensure_teacher(Path(root), size, base, sweep, progress=progress))


# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------


def write_results(exp: Experiment) -> Path:
    from mmkd.curves.aggregate import load_results, write_tables

    df = load_results(exp.path)
    paths = write_tables(df, exp.mmkd)
    return paths[0]


PARAM_COLUMNS = {
    "trial_id": "trial",
    "student": "student",
    "teacher": "teacher",
    "ratio": "ratio",
    "lr": "lr",
    "adapter_rank": "rank",
    "aux_translation": "aux",
}


def best_table(exp: Experiment, n: int = 10) -> str:
    from mmkd.curves.aggregate import load_results

    df = load_results(exp.path, include_confirm=False)  # the search's: confirm trials share its dev scores
    if df.empty or names.SCORE not in df:
        return "(no evaluations yet)"
    sweep = config_mod.load(exp.mmkd / CONFIG_FILE)
    columns = {**PARAM_COLUMNS, **metric_columns(sweep), "stopped_by": "stopped_by"}
    last = df.sort_values("step").groupby("trial_id").tail(1)
    last = last.sort_values(sweep.search.metric, ascending=sweep.search.mode == "min").head(n)
    cols = [c for c in columns if c in last]
    shown = last[cols].rename(columns=columns)
    return str(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def print_best(exp: Experiment) -> None:
    print(f"\nBest trials of {exp.path} (final evaluation of each trial):", file=sys.stdout)
    print(best_table(exp))
    print(f"\nResults table: {exp.mmkd / 'results.csv'}    curves: mmkd curves {exp.path}")


def status(name_or_path: str, storage: str | None = None) -> str:
    from mmkd.curves.aggregate import trial_status

    exp = Experiment.locate(name_or_path, storage)
    states = trial_status(exp.path)
    counts: dict[str, int] = {}
    for s in states.values():
        counts[s] = counts.get(s, 0) + 1
    sweep = config_mod.load(exp.mmkd / CONFIG_FILE)
    head = (
        f"sweep {exp.name} at {exp.path}: {len(states)}/{sweep.search.num_samples} trials "
        f"({', '.join(f'{k.lower()} {v}' for k, v in sorted(counts.items())) or 'none started'})"
    )
    from mmkd.sweep.confirm import stage_status

    head += stage_status(exp.path)
    stage = stages.describe(exp.mmkd, len({t for t, _ in sweep.pairs()}), sweep.distill.cache)
    if "interrupted" in stage:
        stage += f"; resume with: mmkd sweep resume {exp.path}"
    return head + "\n" + stage + _lid_warning(exp) + "\n" + best_table(exp, n=sweep.search.num_samples)


def _lid_warning(exp: Experiment) -> str:
    """Languages whose references the language ID identifies < 80% of the time: WLR there is unreliable."""
    from mmkd.curves.aggregate import load_results

    df = load_results(exp.path)
    if "unreliable_langs" not in df:
        return ""
    langs = sorted(
        {lang for cell in df["unreliable_langs"].dropna() for lang in str(cell).split(",") if lang}
    )
    if not langs:
        return ""
    return f"\nwarning: WLR is unreliable in {', '.join(langs)} (language ID below 80% on their references)"
