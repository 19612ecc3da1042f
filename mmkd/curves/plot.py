"""PNG plots of a sweep (matplotlib, Agg). Each function takes aggregated frames and writes one file:
never one line per trial (a sweep may have thousands), always the best-per-cell rows or a scatter."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mmkd.curves.fit import PANELS, CurveFit

TITLES = {
    "source": "source language",
    "zero_shot": "zero-shot",
    "zero_shot_high": "zero-shot, high-resource",
    "low_resource": "zero-shot, low-resource",
}
LABELS = {"chrf": "chrF (best over lr)", "wlr": "wrong-language rate"}
DPI = 100
# No "Software" entry (it carries the matplotlib version): the same figure gives the same bytes.
METADATA: dict[str, str | None] = {"Software": None}


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, metadata=METADATA)
    plt.close(fig)
    return path


def _student_colours(best: pd.DataFrame) -> dict[str, tuple[float, float, float, float]]:
    """Smallest student darkest: the colour order is the size order."""
    students = best.drop_duplicates("student").sort_values("student_params")["student"].astype(str).tolist()
    cmap = plt.get_cmap("viridis")
    return {s: cmap(0.85 * i / max(1, len(students) - 1)) for i, s in enumerate(students)}


def _ratio_axis(ax: Axes, ratios: Sequence[float]) -> None:
    ax.set_xscale("log", base=2)
    ticks = sorted(set(ratios))
    if len(ticks) <= 10:
        ax.set_xticks(ticks, [f"{r:.3g}" for r in ticks], fontsize=8)  # exact ratios run to 6 digits
        ax.minorticks_off()


def versus_ratio(
    best: pd.DataFrame,
    metric: str,
    fits: Mapping[tuple[str, str, str], CurveFit],
    path: Path,
    baselines: pd.DataFrame | None = None,
) -> Path:
    """``metric`` (chrf or wlr) of each cell's best learning rate against the ratio, with its 95% interval:
    a column of panels per language group, a row per adapter setting, a line per student size (the
    fitted curve where ``fits`` has one for (student, adapter, ``<group>/<metric>``)); each baseline
    (mmkd.eval.baselines) a horizontal reference line."""
    adapters = best.drop_duplicates("adapter").sort_values("adapter_rank")["adapter"].tolist()
    colours = _student_colours(best)
    fig, axes = plt.subplots(
        len(adapters),
        len(PANELS),
        figsize=(4.2 * len(PANELS), 3.2 * len(adapters) + 0.6),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for row, adapter in enumerate(adapters):
        for col, group in enumerate(PANELS):
            ax, column = axes[row, col], f"{group}/{metric}"
            for student, cells in best[best["adapter"] == adapter].groupby("student", sort=False):
                cells = cells.sort_values("ratio")
                colour = colours[str(student)]
                fit = fits.get((str(student), adapter, column))
                _line_with_intervals(
                    ax, cells, column, f"{column}_lo", f"{column}_hi", colour, str(student), fit
                )
            _reference_lines(ax, baselines, column)
            _ratio_axis(ax, best["ratio"].tolist())
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(TITLES[group])
            if row == len(adapters) - 1:
                ax.set_xlabel("teacher / student parameters")
            if col == 0:
                ax.set_ylabel(f"{adapter}\n{LABELS[metric]}")
    if metric == "wlr":
        axes[0, 0].set_ylim(-0.03, 1.03)
    axes[0, -1].legend(title="student", fontsize=8, title_fontsize=8, loc="best")
    return _save(fig, path)


def lr_vs_wlr(
    final: pd.DataFrame,
    rho: Mapping[str, tuple[float, float, float]],
    path: Path,
    baselines: pd.DataFrame | None = None,
) -> Path:
    """Every trial's final zero-shot WLR against its learning rate, full finetuning vs adapters;
    ``rho``: (ρ, low, high) for "all", "full" and "adapters"; baselines as reference lines."""
    fig, ax = plt.subplots(figsize=(6.0, 4.2), layout="constrained")
    # A trial whose zero-shot outputs were all undetermined has no WLR to place.
    shown = final[final["zero_shot/wlr"].notna()]
    alpha = 0.8 if len(shown) <= 200 else 0.35
    for setting, marker in (("full", "o"), ("adapters", "^")):
        rows = shown[(shown["adapter_rank"] == 0) == (setting == "full")]
        if rows.empty:
            continue
        label = "full finetuning" if setting == "full" else "adapters (LoRA)"
        ax.scatter(
            rows["lr"],
            rows["zero_shot/wlr"],
            marker=marker,
            alpha=alpha,
            s=18,
            label=f"{label}: ρ = {_rho(rho.get(setting))}",
        )
    if not shown.empty:
        ax.set_xscale("log")
        # Labels on every minor tick of a narrow lr range overlap; the decades are enough.
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    _reference_lines(ax, baselines, "zero_shot/wlr")
    if not shown.empty or baselines is not None:
        ax.legend(fontsize=8, loc="best")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("zero-shot wrong-language rate (final evaluation)")
    ax.set_title(f"Spearman ρ = {_rho(rho.get('all'))} over {len(shown)} trials", fontsize=10)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _line_with_intervals(
    ax: Axes,
    rows: pd.DataFrame,
    column: str,
    low: str,
    high: str,
    colour: Any,
    label: str,
    fit: CurveFit | None,
) -> None:
    """``column`` against the ratio with its interval (``low``, ``high``) as error bars, joined by a line,
    or by the fitted curve when there is one."""
    y = rows[column].to_numpy(dtype=float)
    err = np.abs(rows[[low, high]].to_numpy(dtype=float).T - y)
    style = "none" if fit else "-"
    ax.errorbar(rows["ratio"], y, yerr=np.nan_to_num(err), color=colour, marker="o", markersize=4, capsize=2,
                linestyle=style, label=label)  # fmt: skip
    if fit:
        grid = np.geomspace(rows["ratio"].min(), rows["ratio"].max(), 60)
        ax.plot(grid, fit.predict(grid), color=colour, linewidth=1.5)


# One line style per baseline, grey: references, not results.
_BASELINE_STYLES = {"copy_input": ":", "english_answer": "--"}


def _reference_lines(ax: Axes, baselines: pd.DataFrame | None, column: str) -> None:
    """A horizontal line per baseline at its ``column`` value (``teacher:*`` dash-dotted)."""
    if baselines is None or column not in baselines:
        return
    for name, value in zip(baselines["baseline"], baselines[column], strict=True):
        if not math.isnan(float(value)):
            style = _BASELINE_STYLES.get(str(name), "-.")
            ax.axhline(float(value), color="0.45", linestyle=style, linewidth=1, label=str(name))


def _rho(value: tuple[float, float, float] | None) -> str:
    if value is None or math.isnan(value[0]):
        return "– (too few trials)"
    rho, low, high = value
    return f"{rho:.2f}" if math.isnan(low) else f"{rho:.2f} [{low:.2f}, {high:.2f}]"


def heatmap(
    best: pd.DataFrame, langs: Sequence[str], groups: Mapping[str, str], metric: str, path: Path
) -> Path:
    """Per-language ``metric`` of each cell's best learning rate: a row per cell, a column per language,
    languages ordered source, zero-shot high-resource, low-resource (``groups``: language → group)."""
    labels = [f"{r.student}  r={r.ratio:g}  {r.adapter}" for r in best.itertuples()]
    values = best[[f"eval/{lang}/{metric}" for lang in langs]].to_numpy(dtype=float)
    fig, ax = plt.subplots(
        figsize=(max(4.5, 0.42 * len(langs) + 3.2), max(2.5, 0.24 * len(labels) + 1.6)), layout="constrained"
    )
    image = ax.imshow(
        values,
        aspect="auto",
        cmap="magma_r" if metric == "wlr" else "viridis",
        vmin=0.0 if metric == "wlr" else None,  # a rate: the full scale, so heat maps compare
        vmax=1.0 if metric == "wlr" else None,
    )
    ax.set_xticks(
        range(len(langs)), [f"{lang}\n{_short(groups.get(lang, ''))}" for lang in langs], fontsize=7
    )
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    for boundary in np.flatnonzero([groups.get(a) != groups.get(b) for a, b in itertools.pairwise(langs)]):
        ax.axvline(boundary + 0.5, color="white", linewidth=2)
    if values.size <= 400:  # numbers stay legible only on small grids
        for (i, j), v in np.ndenumerate(values):
            if not math.isnan(v):
                r, g, b, _ = image.cmap(image.norm(v))
                ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                ax.text(
                    j,
                    i,
                    f"{v:.2f}" if metric == "wlr" else f"{v:.0f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color=ink,
                )
    fig.colorbar(image, ax=ax, label=LABELS[metric].split(" (")[0])
    ax.set_title(f"{LABELS[metric].split(' (')[0]} per language (best learning rate per cell)", fontsize=10)
    return _save(fig, path)


def _short(group: str) -> str:
    return {"source": "src", "zero_shot_high": "high", "low_resource": "low"}.get(group, "")


def gain_vs_ratio(gain: pd.DataFrame, fits: Mapping[tuple[str, str, str], CurveFit], path: Path) -> Path:
    """A method's chrF gain over the no-distillation control (confirmed cells, test split) against the
    ratio, with its 95% interval: a column of panels per language group (low-resource first), a row per
    adapter setting, a line per student size (the fitted curve where ``fits`` has one for (student,
    adapter, group)); a grey line at no gain."""
    groups = ["low_resource", "zero_shot_high", "source"]
    chrf = gain[gain["metric"] == "chrf"]
    adapters = chrf.drop_duplicates("adapter").sort_values("adapter_rank")["adapter"].tolist()
    colours = _student_colours(chrf)
    fig, axes = plt.subplots(
        len(adapters),
        len(groups),
        figsize=(4.2 * len(groups), 3.2 * len(adapters) + 0.6),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for (row, adapter), (col, group) in itertools.product(enumerate(adapters), enumerate(groups)):
        ax = axes[row, col]
        ax.axhline(0.0, color="0.5", linewidth=1)
        cells = chrf[(chrf["adapter"] == adapter) & (chrf["group"] == group)]
        for student, points in cells.groupby("student", sort=False):
            points = points.sort_values("ratio")
            fit = fits.get((str(student), adapter, group))
            colour = colours[str(student)]
            _line_with_intervals(ax, points, "gain", "ci_low", "ci_high", colour, str(student), fit)
        _ratio_axis(ax, chrf["ratio"].tolist())
        ax.grid(alpha=0.3)
        if row == 0:
            ax.set_title(TITLES[group])
        if row == len(adapters) - 1:
            ax.set_xlabel("teacher / student parameters")
        if col == 0:
            ax.set_ylabel(f"{adapter}\nchrF gain over no distillation")
    axes[0, -1].legend(title="student", fontsize=8, title_fontsize=8, loc="best")
    return _save(fig, path)
