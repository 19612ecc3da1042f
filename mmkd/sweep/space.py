"""The sweep's search space as an Optuna define-by-run function (what ``OptunaSearch`` samples).

Searched: ``lr`` (log scale), ``adapter_rank`` (0 = full finetuning), any ``distill.<key>`` the sweep
lists under ``search.distill`` (loss weights, temperature), ``aux_translation`` when the sweep lists
shares under ``search.aux_translation``, ``method`` (``search.method``, when it lists more than one:
``none`` is the no-distillation control) and ``models`` — a ``teacher:student`` pair of the family (a
teacher larger than its student), from which the real parameter counts, ``ratio`` (on
``family.ratio_basis``, non-embedding by default) and ``ratio_total`` are recorded. A pair is one
categorical parameter because Optuna's TPE cannot sample a categorical whose choices change from trial
to trial. The derived values returned as constants (sizes, parameter counts, ratios) reach every trial's
config, and the study trial carries the pair, the ratio and the stage as user attributes (optuna-dashboard
shows them; mmkd.sweep.study adds Tune's trial id).

With ``search.grid`` the cells are fixed rather than sampled: ``design_points`` enqueues every cell
(pair, rank, method) ``num_samples / cells`` times, and TPE proposes only the rest (lr, distill.*).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from mmkd.config import LogRange, SweepConfig
from mmkd.models import get_family


class Space:
    """A picklable define-by-run space (Tune saves the searcher with the experiment for resume)."""

    def __init__(self, sweep: SweepConfig) -> None:
        self.lr = sweep.search.lr
        self.ranks = list(sweep.search.adapter_rank)
        self.pairs = [f"{t}:{s}" for t, s in sweep.pairs()]
        self.distill = dict(sweep.search.distill)
        self.aux_translation = sweep.search.aux_translation
        self.methods = list(sweep.search.method)
        family = get_family(sweep.family.name)
        self.params = {size.name: size.params for size in family.sizes}
        # The latest trial's own set_user_attr (mmkd.sweep.study labels the trial with it later): a method
        # of the Optuna trial pickles with the searcher, the wrapper Tune passes to this function does not.
        self.set_user_attr: Callable[[str, Any], None] | None = None
        basis = sweep.family.ratio_basis
        self.counted = {size.name: size.count(basis) for size in family.sizes}

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        if isinstance(self.lr, LogRange):
            trial.suggest_float("lr", self.lr.low, self.lr.high, log=self.lr.log)
        elif isinstance(self.lr, list):
            trial.suggest_categorical("lr", self.lr)
        trial.suggest_categorical("adapter_rank", self.ranks)
        teacher, student = str(trial.suggest_categorical("models", self.pairs)).split(":")
        if self.aux_translation is not None:
            trial.suggest_categorical("aux_translation", self.aux_translation)
        # One method is a constant, not a parameter: a one-choice categorical would still shift TPE's
        # random stream, and sweeps without a control must propose what they proposed before.
        method = trial.suggest_categorical("method", self.methods) if len(self.methods) > 1 else None
        for key, space in sorted(self.distill.items()):
            if isinstance(space, LogRange):
                trial.suggest_float(f"distill.{key}", space.low, space.high, log=space.log)
            else:
                trial.suggest_categorical(f"distill.{key}", space)
        constants: dict[str, Any] = {
            "teacher": teacher,
            "student": student,
            "teacher_params": self.params[teacher],
            "student_params": self.params[student],
            "ratio": self.counted[teacher] / self.counted[student],
            "ratio_total": self.params[teacher] / self.params[student],
            "stage": "search",
        }
        if method is None:
            constants["method"] = self.methods[0]
        if isinstance(self.lr, float):
            constants["lr"] = self.lr
        for key in ("teacher", "student", "ratio"):
            trial.set_user_attr(key, constants[key])
        trial.set_user_attr("stage", "search")
        self.set_user_attr = trial.set_user_attr
        return constants


def design_points(sweep: SweepConfig) -> list[dict[str, Any]]:
    """With ``search.grid``: every cell's fixed parameters, ``num_samples / cells`` times each, in an
    order that visits every cell once before any twice (an interrupted sweep still covers the grid).
    Optuna enqueues them; its sampler fills in the parameters they leave out. Without: none."""
    if not sweep.search.grid:
        return []
    cells = sweep.cells()
    rates = sweep.search.lr if isinstance(sweep.search.lr, list) else [None]
    points = []
    for _ in range(sweep.search.num_samples // (len(cells) * len(rates))):
        for lr in rates:
            for pair, rank, method in cells:
                point: dict[str, Any] = {"models": pair, "adapter_rank": rank}
                if len(sweep.search.method) > 1:
                    point["method"] = method
                if lr is not None:
                    point["lr"] = lr
                points.append(point)
    return points
