"""The numbers behind the curves: final evaluations, best-per-cell, bootstrap intervals, fitted curves.

All randomness is seeded, so the same table gives the same numbers.

- A *cell* is (student size, ratio, adapter setting); its value is the best trial over the learning rate
  (by the sweep objective ``eval/score``) at the trial's final evaluation.
- Intervals over *examples* resample the per-example rows a trial keeps of its final evaluation
  (``mmkd_examples.jsonl``): chrF per example (sentence chrF, whose mean approximates corpus chrF) and
  WLR over the determined examples. Intervals over *seeds* resample the trials of a cell that repeat
  the best learning rate with other seeds, when a sweep repeated them.
- The fitted curve per student size is ``score = a + b·log2 r + c·(log2 r)²`` (a line with two distinct
  ratios); its best ratio is the maximum over the observed range, with a bootstrap interval over trials.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

SEED = 0
N_BOOT = 1000
GROUPS = ("source", "zero_shot_high", "low_resource")


def languages(df: pd.DataFrame) -> list[str]:
    """Languages with per-language metrics (``eval/<lang>/chrf``), in column order."""
    skip = {"zero_shot", "low_resource", "source", "zero_shot_high"}
    return [
        c.split("/")[1]
        for c in df.columns
        if c.startswith("eval/") and c.endswith("/chrf") and c.count("/") == 2 and c.split("/")[1] not in skip
    ]


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of each trial, with group columns for the three panels."""
    evals = df[df["eval/score"].notna()] if "eval/score" in df else df.iloc[0:0]
    final = evals.sort_values(["trial_id", "step"]).groupby("trial_id", sort=True).tail(1).copy()
    final["adapter"] = ["full" if int(r) == 0 else f"lora r={int(r)}" for r in final["adapter_rank"]]
    langs = languages(df)
    for i, row in final.iterrows():
        source = str(row.get("source_lang", "en"))
        low = set(str(row.get("low_resource_langs", "")).split(","))
        high = [lang for lang in langs if lang != source and lang not in low]
        for metric in ("chrf", "wlr"):
            final.loc[i, f"source/{metric}"] = row.get(f"eval/{source}/{metric}", math.nan)
            final.loc[i, f"zero_shot_high/{metric}"] = _nanmean([row.get(f"eval/{g}/{metric}") for g in high])
            final.loc[i, f"low_resource/{metric}"] = row.get(f"eval/low_resource/{metric}", math.nan)
    return final.reset_index(drop=True)


def _nanmean(values: Sequence[object]) -> float:
    kept = [float(v) for v in values if v is not None and not math.isnan(float(v))]  # type: ignore[arg-type]
    return sum(kept) / len(kept) if kept else math.nan


def best_per_cell(final: pd.DataFrame, metric: str = "eval/score") -> pd.DataFrame:
    """One row per (student, ratio, adapter): the trial with the best ``metric`` over learning rates."""
    if final.empty:
        return final
    ranked = final.sort_values([metric, "trial_id"], ascending=[False, True], na_position="last")
    best = ranked.groupby(["student", "ratio", "adapter"], sort=False).head(1)
    counts = final.groupby(["student", "ratio", "adapter"]).size().rename("n_trials")
    best = best.join(counts, on=["student", "ratio", "adapter"])
    return best.sort_values(["student_params", "ratio", "adapter"]).reset_index(drop=True)


def bootstrap_ci(values: Sequence[float], n_boot: int = N_BOOT, seed: int = SEED) -> tuple[float, float]:
    """95% percentile interval of the mean (NaN when there is nothing to resample)."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def example_cis(examples: pd.DataFrame, zero_shot: Sequence[str]) -> dict[str, float]:
    """Bootstrap intervals over one trial's evaluation examples of the zero-shot languages."""
    rows = examples[examples["lang"].isin(list(zero_shot))]
    chrf_lo, chrf_hi = bootstrap_ci(rows["chrf"].tolist())
    determined = rows[rows["verdict"] != "undetermined"]
    wlr_lo, wlr_hi = bootstrap_ci((determined["verdict"] == "wrong").astype(float).tolist())
    return {"chrf_ci_low": chrf_lo, "chrf_ci_high": chrf_hi, "wlr_ci_low": wlr_lo, "wlr_ci_high": wlr_hi}


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ (average ranks for ties); NaN with fewer than 3 pairs or a constant side."""
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if not (math.isnan(a) or math.isnan(b))]
    if len(pairs) < 3:
        return math.nan
    rx = pd.Series([a for a, _ in pairs]).rank().to_numpy()
    ry = pd.Series([b for _, b in pairs]).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclass(frozen=True)
class CurveFit:
    student: str
    coef: tuple[float, ...]  # highest power first, in log2(ratio)
    best_ratio: float
    best_ratio_low: float
    best_ratio_high: float
    n_points: int

    def predict(self, ratio: np.ndarray) -> np.ndarray:
        return np.asarray(np.polyval(self.coef, np.log2(ratio)))


def fit_curve(student: str, ratios: Sequence[float], scores: Sequence[float]) -> CurveFit | None:
    """Quadratic in log2(ratio) (linear with two distinct ratios); None with fewer than two."""
    x = np.log2(np.asarray(ratios, dtype=float))
    y = np.asarray(scores, dtype=float)
    keep = ~np.isnan(y)
    x, y = x[keep], y[keep]
    degree = min(2, len(np.unique(x)) - 1)
    if degree < 1:
        return None
    coef = np.polyfit(x, y, degree)
    grid = np.linspace(x.min(), x.max(), 200)
    best = float(2 ** grid[np.argmax(np.polyval(coef, grid))])
    rng = np.random.default_rng(SEED)
    bests = []
    for _ in range(200):
        idx = rng.integers(0, len(x), len(x))
        if len(np.unique(x[idx])) > degree:
            c = np.polyfit(x[idx], y[idx], degree)
            bests.append(2 ** grid[np.argmax(np.polyval(c, grid))])
    low, high = (
        (float(np.percentile(bests, 2.5)), float(np.percentile(bests, 97.5))) if bests else (best, best)
    )
    return CurveFit(student, tuple(float(c) for c in coef), best, low, high, len(x))
