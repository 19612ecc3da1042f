"""One rank of a trial launched by ``torchrun`` (tests/test_sharding.py): the recipe as a Ray Train worker
runs it, without Ray (torchrun starts the processes and Accelerate their gloo process group).

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/sharded_worker.py SPEC.json

SPEC: ``out`` (the trial's folder), ``models`` (the tiny models' folder), ``strategy`` (ddp | fsdp),
``overrides`` (the sweep's), ``stop_at`` (a step after whose report every rank stops, as if killed);
optional ``teacher``, ``student`` (tiny sizes, default s and xs), ``adapter_rank`` (default 4), ``stage``
(default search; confirm: the last evaluation adds the test split).
Each rank writes ``rank<r>.json`` to ``out``: its loss at every step and the elements of the student's
parameters it holds (and of the whole student)."""

import contextlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from mmkd import sharding
from mmkd.config import Artefacts, TrialConfig, load
from mmkd.models import get_family
from mmkd.trial import FolderSession, LocalSession, Recipe


class Stopped(Exception):
    pass


class RankSession(FolderSession):
    """Rank 0 reports to ``result.jsonl`` and keeps the checkpoint (as ``mmkd trial run``); the others
    report nothing; all restore from the same folder."""

    def __init__(self, trial_dir: Path, rank: int, stop_at: int | None) -> None:
        super().__init__(trial_dir)
        self.rank, self.stop_at = rank, stop_at

    def report(self, metrics, folder):
        if self.rank == 0:
            LocalSession(self.trial_dir).report(metrics, folder)
        if self.stop_at is not None and metrics["step"] >= self.stop_at:
            raise Stopped


def main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    rank, out, models = int(os.environ["RANK"]), Path(spec["out"]), Path(spec["models"])
    family, teacher, student = get_family("tiny"), spec.get("teacher", "s"), spec.get("student", "xs")
    searched = {
        "lr": 3e-3,
        "adapter_rank": spec.get("adapter_rank", 4),
        "teacher": teacher,
        "student": student,
        "teacher_params": family.size(teacher).params,
        "student_params": family.size(student).params,
        "ratio": family.ratio(teacher, student),
        "stage": spec.get("stage", "search"),
    }
    artefacts = Artefacts(models={student: str(models / student)}, teachers={teacher: str(models / teacher)})
    config = TrialConfig.build(searched, load("quickstart", spec["overrides"]), artefacts)
    config = replace(config, workers=int(os.environ["WORLD_SIZE"]), strategy=spec["strategy"])
    losses: list[tuple[int, float]] = []
    recipe = Recipe(
        config, RankSession(out, rank, spec.get("stop_at")), lambda step, loss: losses.append((step, loss))
    )
    with contextlib.suppress(Stopped):
        recipe.run()
    held, total = sharding.local_share(recipe.student)
    record = {"losses": losses, "held": held, "total": total}
    (out / f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1])
