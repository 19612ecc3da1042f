"""The Pareto front of a multi-objective sweep (``search.objectives``, two or more metrics): the trials
whose final evaluation no other trial beats on every objective at once.

Written by ``mmkd curves`` as ``curves/pareto.csv`` (one row per trial on the front, best first on the
first objective; the trial's pair, ratio, learning rate, adapter rank and every objective) and
``curves/pareto.png`` (every trial's final evaluation on the first two objectives, the front joined),
with a report section. A sweep with one objective has no front and gets none of these.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mmkd.curves.plot import DPI, METADATA

PARETO_CSV, PARETO_PNG = "pareto.csv", "pareto.png"
COLUMNS = ["trial_id", "teacher", "student", "ratio", "lr", "adapter_rank", "step"]


def sweep_objectives(exp_dir: Path) -> dict[str, str]:
    """``search.objectives`` of the sweep's stored config (read as YAML: the curves never import Ray)."""
    path = exp_dir / "mmkd" / "config.yaml"
    config = yaml.safe_load(path.read_text()) if path.is_file() else {}
    return dict((config.get("search") or {}).get("objectives") or {})


def front(final: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """The rows of ``final`` (one per trial) that no other row dominates; rows missing an objective are
    left out. Dominating: at least as good on every objective and better on one."""
    rows = final.dropna(subset=list(objectives))
    # Larger is better on every column of ``score``.
    score = np.column_stack([rows[m] * (1 if d == "max" else -1) for m, d in objectives.items()])
    at_least = (score[:, None, :] >= score[None, :, :]).all(axis=2)
    better = (score[:, None, :] > score[None, :, :]).any(axis=2)
    dominated = (at_least & better).any(axis=0)  # [i, j]: i dominates j
    first, direction = next(iter(objectives.items()))
    return rows[~dominated].sort_values(first, ascending=direction == "min")


def section(
    final: pd.DataFrame, objectives: dict[str, str], out: Path, markdown: Callable[[pd.DataFrame], str]
) -> list[str]:
    """Write ``pareto.csv`` and ``pareto.png`` into ``out``; the report's lines about them (its tables
    drawn by ``markdown``)."""
    if len(objectives) < 2 or any(m not in final for m in objectives):
        return []
    best = front(final, objectives)
    table = best[[c for c in COLUMNS if c in best] + list(objectives)]
    table.to_csv(out / PARETO_CSV, index=False, lineterminator="\n", float_format="%.6g")
    _plot(final, best, objectives, out / PARETO_PNG)
    wanted = ", ".join(
        f"{m} ({'higher' if d == 'max' else 'lower'} is better)" for m, d in objectives.items()
    )
    return [
        "## Pareto front",
        "",
        f"The sweep optimised {wanted}. {len(best)} of {len(final)} trials are on the front: no other "
        "trial's final evaluation is at least as good on every objective and better on one.",
        "",
        markdown(table.map(lambda v: f"{v:.4g}" if isinstance(v, float) else v)),
        "",
        f"![Pareto front]({PARETO_PNG})",
        "",
        f"- [{PARETO_CSV}]({PARETO_CSV})",
        "",
    ]


def _plot(final: pd.DataFrame, best: pd.DataFrame, objectives: dict[str, str], path: Path) -> Path:
    import matplotlib.pyplot as plt

    x, y = list(objectives)[:2]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(final[x], final[y], s=14, color="0.7", label="final evaluation of a trial")
    line = best.sort_values(x)
    ax.plot(line[x], line[y], "o-", color="tab:red", markersize=5, label="Pareto front")
    ax.set_xlabel(f"{x} ({objectives[x]})")
    ax.set_ylabel(f"{y} ({objectives[y]})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, metadata=METADATA)
    plt.close(fig)
    return path
