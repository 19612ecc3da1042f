"""PNG plots of a sweep (matplotlib, Agg). Each function takes tidy frames and writes one file."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mmkd.curves.fit import GROUPS, CurveFit, spearman

TITLES = {
    "source": "source language",
    "zero_shot_high": "zero-shot, high-resource",
    "low_resource": "low-resource",
}
DPI = 110
# Fixed metadata: the same figure gives the same bytes.
METADATA = {"Software": None}


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, metadata=METADATA)
    plt.close(fig)
    return path


def versus_ratio(best: pd.DataFrame, metric: str, fits: dict[str, CurveFit], path: Path) -> Path:
    """``metric`` (chrf or wlr) of the best trial per cell against the ratio: a panel per language group,
    a line per student size (full finetuning solid, adapters dashed); the fitted curve on chrF panels."""
    fig, axes = plt.subplots(1, len(GROUPS), figsize=(4.2 * len(GROUPS), 3.6), sharey=True)
    students = best.drop_duplicates("student").sort_values("student_params")["student"].tolist()
    colours = {s: plt.get_cmap("viridis")(i / max(1, len(students) - 1)) for i, s in enumerate(students)}
    for ax, group in zip(axes, GROUPS, strict=True):
        for (student, adapter), cell in best.groupby(["student", "adapter"], sort=True):
            cell = cell.sort_values("ratio")
            ax.plot(
                cell["ratio"],
                cell[f"{group}/{metric}"],
                marker="o",
                color=colours[student],
                linestyle="-" if adapter == "full" else "--",
                label=f"{student} ({adapter})",
            )
        if metric == "chrf" and group == "zero_shot_high":
            for student, fit in fits.items():
                ratios = best.loc[best["student"] == student, "ratio"]
                grid = np.geomspace(ratios.min(), ratios.max(), 50)
                ax.plot(grid, fit.predict(grid), color=colours[student], alpha=0.35, linewidth=3)
        ax.set_xscale("log", base=2)
        ax.set_title(TITLES[group])
        ax.set_xlabel("teacher / student parameters")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel({"chrf": "chrF (best over lr)", "wlr": "wrong-language rate"}[metric])
    axes[-1].legend(fontsize=7, loc="best")
    return _save(fig, path)


def lr_vs_wlr(final: pd.DataFrame, path: Path) -> tuple[Path, float]:
    """Learning rate against zero-shot WLR, full finetuning vs adapters, with Spearman's ρ."""
    rho = spearman(final["lr"].tolist(), final["eval/zero_shot/wlr"].astype(float).tolist())
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    # Trials whose zero-shot outputs were all undetermined have no WLR to place.
    final = final[final["eval/zero_shot/wlr"].notna()]
    for adapter, rows in final.groupby(final["adapter"] == "full", sort=True):
        ax.scatter(
            rows["lr"],
            rows["eval/zero_shot/wlr"],
            label="full finetuning" if adapter else "adapters",
            marker="o" if adapter else "^",
            alpha=0.8,
        )
    if not final.empty:
        ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("zero-shot wrong-language rate")
    ax.set_title(f"Spearman ρ = {rho:.2f}" if not math.isnan(rho) else "Spearman ρ: too few trials")
    ax.grid(alpha=0.3)
    if not final.empty:
        ax.legend(fontsize=8)
    return _save(fig, path), rho


def heatmap(best: pd.DataFrame, langs: list[str], metric: str, path: Path) -> Path:
    """Per-language ``metric`` of the best trial per cell (rows) and language (columns)."""
    labels = [f"{r.student} r={r.ratio:.3g} {r.adapter}" for r in best.itertuples()]
    values = best[[f"eval/{lang}/{metric}" for lang in langs]].astype(float).to_numpy()
    fig, ax = plt.subplots(figsize=(0.32 * len(langs) + 3, 0.3 * len(labels) + 1.6))
    image = ax.imshow(values, aspect="auto", cmap="magma_r" if metric == "wlr" else "viridis")
    ax.set_xticks(range(len(langs)), langs, fontsize=7, rotation=90)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    fig.colorbar(image, ax=ax, label=metric)
    return _save(fig, path)
