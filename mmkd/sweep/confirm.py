"""The confirm stage: the search's best configuration per cell, retrained with fresh seeds, on test.

    mmkd sweep run toy_scaling          # a sweep with `confirm:` runs it after the search
    mmkd sweep confirm runs/quickstart [--seeds 3] [--select-on source]   # or later, for a finished sweep
    mmkd sweep resume runs/toy_scaling              # an interrupted stage continues like the search

A cell is (student, teacher, adapter rank, method). Its configuration is the search trial with the best
*dev* score at its last evaluation — the source language's (``confirm.select_on: source``, XTREME-R's
zero-shot protocol) or the search objective (``target``) — preferring trials that ran all their steps.
Reporting the score a configuration was picked on overstates it (the winner's curse), so each pick is
trained again with ``confirm.seeds`` new seeds (``train.seed + 1``, ``+ 2``, ...) and evaluated on the
test split of every language, which the search never saw: ``test/<lang>/...``, ``test/<group>/...``.

The picks are written once to ``<exp>/mmkd/confirm_plan.json``, so a resumed stage trains exactly the
trials it planned. The trials form their own Tune experiment in ``<exp>/confirm/`` (restorable with
``Tuner.restore``); the results table holds them next to the search's, with ``stage`` = ``confirm`` and
their ``seed``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from mmkd import config as config_mod
from mmkd import names
from mmkd.config import Artefacts, ConfirmConfig, SweepConfig
from mmkd.errors import UserInputError
from mmkd.names import CONFIRM_DIR

PLAN_FILE = "confirm_plan.json"
CELL = ["student", "teacher", "adapter_rank", "method"]
# What a confirm trial takes from the search trial it repeats (plus every searched ``distill.*``).
PARAMS = (
    "lr",
    "adapter_rank",
    "teacher",
    "student",
    "teacher_params",
    "student_params",
    "ratio",
    "ratio_total",
    "method",
)


def selection_metric(sweep: SweepConfig, select_on: str) -> str:
    """The dev metric that picks each cell's configuration."""
    if select_on == "target":
        return sweep.search.metric
    from mmkd.eval.task_metrics import primary_metric

    return names.key(names.SOURCE, primary_metric(sweep.task.name))


def select(df: pd.DataFrame, metric: str, mode: str = "max") -> pd.DataFrame:
    """One row per cell: the search trial whose last evaluation is best on ``metric``.

    Errored trials are left out; trials that reached their ``max_steps`` come before those stopped early
    (the pick is retrained to the end); ties go to the smaller learning rate, then the trial id, so the
    pick never depends on file order. ``method`` is ``mmkd`` for a sweep that did not report one.
    """
    search = df[df["stage"].fillna("search") == "search"] if "stage" in df else df
    search = search[search[metric].notna() & (search["status"] != "ERROR")]
    if "method" not in search:
        search = search.assign(method="mmkd")
    last = search.sort_values(["trial_id", "step"]).groupby("trial_id", sort=True).tail(1)
    last = last.assign(_complete=last["step"] >= last["max_steps"])
    ranked = last.sort_values(
        ["_complete", metric, "lr", "trial_id"],
        ascending=[False, mode == "min", True, True],
        kind="stable",
    )
    picked = ranked.groupby(CELL, sort=True).head(1).drop(columns="_complete")
    return picked.sort_values(CELL, kind="stable").reset_index(drop=True)


def make_plan(picked: pd.DataFrame, seeds: list[int], metric: str) -> list[dict[str, Any]]:
    """Each pick once per seed: the trial config of a confirm trial (plain JSON types)."""
    searched = sorted(c for c in picked.columns if c.startswith("distill."))
    plan = []
    for row in picked.to_dict("records"):
        params = {
            key: _plain(row[key]) for key in (*PARAMS, *searched) if key in row and not _missing(row[key])
        }
        params.setdefault("ratio_total", params["ratio"])
        for seed in seeds:
            plan.append(
                {
                    **params,
                    "seed": seed,
                    "stage": "confirm",
                    "selected_from": str(row["trial_id"]),
                    "selected_on": metric,
                    "selected_value": _plain(row[metric]),
                }
            )
    return plan


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def ensure_plan(exp_path: Path, sweep: SweepConfig, confirm: ConfirmConfig) -> list[dict[str, Any]]:
    """The stage's trials: read from ``confirm_plan.json`` when planned before, else planned now."""
    from mmkd.curves.aggregate import load_results

    path = exp_path / "mmkd" / PLAN_FILE
    seeds = [sweep.train.seed + 1 + i for i in range(confirm.seeds)]
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored["seeds"] != seeds or stored["select_on"] != confirm.select_on:
            raise UserInputError(
                f"{path}: the confirm stage was planned with seeds {stored['seeds']} selected on "
                f"{stored['select_on']}; asked for seeds {seeds} on {confirm.select_on} (delete the file "
                f"and {exp_path / CONFIRM_DIR} to plan again)"
            )
        return list(stored["trials"])
    metric = selection_metric(sweep, confirm.select_on)
    df = load_results(exp_path, include_confirm=False)
    if metric not in df or df[metric].isna().all():
        raise UserInputError(f"{exp_path}: no search trial reports {metric}: nothing to confirm")
    plan = make_plan(select(df, metric, sweep.search.mode), seeds, metric)
    text = json.dumps(
        {"select_on": confirm.select_on, "metric": metric, "seeds": seeds, "trials": plan}, indent=1
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)
    return plan


def confirm_trial(
    config: dict[str, Any], sweep: SweepConfig, artefacts: Artefacts, plan: list[dict[str, Any]]
) -> None:
    """The stage's Tune trainable: ``config`` holds only the plan index (short trial names); the plan's
    entry holds the trial's values, its ``seed`` among them (mmkd.config.TrialConfig.build)."""
    from mmkd.trial import tune_trial

    tune_trial(plan[int(config["confirm"])], sweep, artefacts)


def run_stage(exp_path: Path, sweep: SweepConfig, confirm: ConfirmConfig, artefacts: Artefacts) -> int:
    """Plan (or read the plan), then run or resume the stage's trials; 130 when interrupted."""
    from ray import tune

    from mmkd.curves.aggregate import FINISHED, trial_status
    from mmkd.sweep.cluster import trial_resources

    plan = ensure_plan(exp_path, sweep, confirm)
    stage_dir = exp_path / CONFIRM_DIR
    trainable = tune.with_resources(
        tune.with_parameters(confirm_trial, sweep=sweep, artefacts=artefacts, plan=plan),
        trial_resources(sweep.resources),
    )
    print(f"\nmmkd: confirm stage: {len(plan)} trials ({stage_dir})", flush=True)
    if tune.Tuner.can_restore(stage_dir):
        tuner = tune.Tuner.restore(
            str(stage_dir), trainable=trainable, resume_unfinished=True, resume_errored=True
        )
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={"confirm": tune.grid_search(list(range(len(plan))))},
            tune_config=_tune_config(sweep),
            run_config=_run_config(exp_path),
        )
    tuner.fit()
    from mmkd.sweep.runner import Experiment, write_results

    write_results(Experiment(exp_path.parent, exp_path.name))
    finished = sum(s in FINISHED for s in trial_status(stage_dir).values())
    if finished < len(plan):
        print(
            f"\nmmkd: confirm stage interrupted with {finished}/{len(plan)} trials finished; resume with: "
            f"mmkd sweep resume {exp_path}",
            file=sys.stderr,
        )
        return 130
    print(f"mmkd: confirm stage done; curves: mmkd curves {exp_path}")
    return 0


def _tune_config(sweep: SweepConfig) -> Any:
    from ray import tune

    return tune.TuneConfig(
        num_samples=1, max_concurrent_trials=sweep.resources.max_concurrent, reuse_actors=True
    )


def _run_config(exp_path: Path) -> Any:
    """As the search's (mmkd.sweep.runner), without stopping: a confirmed run goes to its last step."""
    from ray import tune

    from mmkd.sweep.logs import driver_loggers

    return tune.RunConfig(
        name=CONFIRM_DIR,
        storage_path=str(exp_path),
        failure_config=tune.FailureConfig(max_failures=2),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        sync_config=tune.SyncConfig(sync_artifacts=True),
        progress_reporter=tune.CLIReporter(
            parameter_columns={"confirm": "#"},
            metric_columns={
                names.STEP: "step",
                names.SOURCE_CHRF: "dev en chrF",
                names.TEST_SCORE: "test score",
            },
            max_report_frequency=30,
        ),
        callbacks=driver_loggers(),
        verbose=1,
    )


def confirm(
    name_or_path: str,
    *,
    storage: str | None = None,
    address: str | None = None,
    seeds: int | None = None,
    select_on: str | None = None,
) -> int:
    """``mmkd sweep confirm``: the stage for a finished search, with the sweep's ``confirm`` settings
    (defaults when it has none) and the options given here."""
    from mmkd.curves.aggregate import FINISHED, trial_status
    from mmkd.sweep.runner import CONFIG_FILE, Experiment, _artefacts, _init_ray

    exp = Experiment.locate(name_or_path, storage)
    sweep = config_mod.load(exp.mmkd / CONFIG_FILE)
    settings = (sweep.confirm or ConfirmConfig()).model_copy(
        update={k: v for k, v in (("seeds", seeds), ("select_on", select_on)) if v is not None}
    )
    if sweep.simulate.enabled:
        raise UserInputError(f"{exp.path}: a simulated sweep has no test split to confirm on")
    finished = sum(s in FINISHED for s in trial_status(exp.path).values())
    if finished < sweep.search.num_samples:
        raise UserInputError(
            f"{exp.path}: the search has {finished}/{sweep.search.num_samples} trials finished; "
            f"finish it first: mmkd sweep resume {exp.path}"
        )
    _init_ray(address)
    return run_stage(exp.path, sweep, settings, _artefacts(sweep, exp))


def stage_settings(exp_path: Path, sweep: SweepConfig) -> ConfirmConfig | None:
    """The confirm settings a resumed sweep continues with: those its plan was made with (also by
    ``mmkd sweep confirm`` with options), else the sweep's own; None when it has no confirm stage."""
    path = exp_path / "mmkd" / PLAN_FILE
    if not path.is_file():
        return sweep.confirm
    stored = json.loads(path.read_text(encoding="utf-8"))
    return ConfirmConfig(seeds=len(stored["seeds"]), select_on=stored["select_on"])


def stage_status(exp_path: Path) -> str:
    """``mmkd sweep status``'s line on the confirm stage; empty without one."""
    from mmkd.curves.aggregate import trial_status

    path = exp_path / "mmkd" / PLAN_FILE
    if not path.is_file():
        return ""
    planned = len(json.loads(path.read_text(encoding="utf-8"))["trials"])
    counts: dict[str, int] = {}
    for state in trial_status(exp_path / CONFIRM_DIR).values():
        counts[state] = counts.get(state, 0) + 1
    shown = ", ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items())) or "none started"
    return f"\nconfirm stage: {sum(counts.values())}/{planned} trials ({shown})"
