"""The numbers behind the curves: final evaluations, best-per-cell, bootstrap intervals, Spearman's ρ and
a fitted curve per student size. All randomness is seeded, so the same table gives the same numbers.

Language groups (the plots' panels), from what each trial reports as ``source_lang`` and
``low_resource_langs``: ``source`` (the source language), ``zero_shot`` (every other evaluated language:
the sweep objective ``eval/score`` is its mean of the task's primary metric, chrF or F1),
``zero_shot_high`` (zero-shot minus low-resource) and ``low_resource``. A group's chrF or WLR is the mean
over its languages, skipping a language without a value (a WLR with nothing determined), like the
trial's own ``eval/<group>/*`` means.

A *cell* is (student size, ratio, adapter setting). Its row is the learning rate with the best mean
``eval/score`` at the trials' final evaluation (the latest so far for a trial still running); a sweep that
repeated a configuration with other seeds gives that row the mean over its seeds.

Intervals are 95% percentile bootstraps, ``N_BOOT`` replicates:

- over evaluation *examples*, from the per-example rows a trial keeps of its final evaluation: resampled
  within each language, then averaged over the group's languages as the trial does. WLR is wrong /
  determined; chrF is the mean *sentence* chrF, an approximation of the corpus chrF the trial reports,
  so its replicates are shifted by (reported − mean sentence chrF) to sit around the reported value;
- and over *seeds* when a cell was repeated: each replicate draws the seeds with replacement and, for
  each drawn seed, one of its example replicates.

A trial without per-example rows of its final step adds no example uncertainty (its replicates are its
reported value); the ``ci_over`` column says what each interval covers.

The fitted curve per (student, adapter setting) is ``y = a + b·x + c·x²`` with ``x = log2(ratio)``, least
squares over the cells (a line with two distinct ratios, nothing with one). Its best ratio maximises the
curve over the observed ratios (never extrapolated); its interval refits the curve to every bootstrap
replicate of the cells.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.polynomial import polynomial
from scipy import stats

from mmkd import names
from mmkd.errors import UserInputError

SEED = 0
N_BOOT = 1000
OBJECTIVE = names.SCORE
ZERO_SHOT_HIGH = "zero_shot_high"  # zero-shot minus low-resource: a group of the curves only
GROUPS = (names.SOURCE, names.ZERO_SHOT, ZERO_SHOT_HIGH, names.LOW_RESOURCE)
PANELS = (names.SOURCE, ZERO_SHOT_HIGH, names.LOW_RESOURCE)  # zero_shot is their union: no panel of its own
METRICS = ("chrf", "wlr")
GROUP_COLUMNS = [f"{group}/{metric}" for group in GROUPS for metric in METRICS]
CELL = ["student", "ratio", "adapter_rank"]
REQUIRED = [
    *("student", "student_params", "teacher", "ratio", "lr", "adapter_rank"),
    *("source_lang", "low_resource_langs", OBJECTIVE),
]
_SAME_FOR_EVERY_SEED = (
    "teacher",
    "adapter",
    "student_params",
    "teacher_params",
    "source_lang",
    "low_resource_langs",
)


def languages(df: pd.DataFrame) -> list[str]:
    """Languages with per-language metrics (``eval/<lang>/chrf``), sorted."""
    keys = [c.split("/") for c in df.columns if names.per_language(c)]
    return sorted({parts[1] for parts in keys if parts[0] == names.EVAL and parts[2] == names.CHRF})


def group_languages(source: str, low_resource: str, evaluated: Sequence[str]) -> dict[str, list[str]]:
    """Each group's languages among ``evaluated``; ``low_resource`` is the reported comma-separated list."""
    low = {lang for lang in low_resource.split(",") if lang}
    zero_shot = [lang for lang in evaluated if lang != source]
    return {
        names.SOURCE: [source] if source in evaluated else [],
        names.ZERO_SHOT: zero_shot,
        ZERO_SHOT_HIGH: [lang for lang in zero_shot if lang not in low],
        names.LOW_RESOURCE: [lang for lang in zero_shot if lang in low],
    }


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Each trial's last evaluation, with an ``adapter`` label and the group columns."""
    if OBJECTIVE not in df or df[OBJECTIVE].isna().all():
        return df.iloc[0:0]
    missing = [c for c in REQUIRED if c not in df]
    if missing:
        raise UserInputError(
            f"trials report no {', '.join(missing)}: not an mmkd sweep "
            '(see docs/DESIGN.md, "Metrics a trial reports")'
        )
    final = df[df[OBJECTIVE].notna()].groupby("trial_id", sort=True).tail(1).reset_index(drop=True)
    final["adapter"] = [adapter_label(r) for r in final["adapter_rank"]]
    return add_groups(final, languages(df))


def adapter_label(rank: float) -> str:
    return "full" if int(rank) == 0 else f"lora r={int(rank)}"


def add_groups(final: pd.DataFrame, langs: Sequence[str]) -> pd.DataFrame:
    """Group means from the per-language columns, one block of rows per (source, low-resource) setting
    (a sweep has one; vectorised per block, since a row loop over 1,000 trials is slow)."""
    out = {column: np.full(len(final), np.nan) for column in GROUP_COLUMNS}
    source = final["source_lang"].fillna("").astype(str)
    low = final["low_resource_langs"].fillna("").astype(str)
    for (src, low_csv), rows in final.groupby([source, low], sort=True).groups.items():
        position = final.index.get_indexer(rows)
        for group, members in group_languages(str(src), str(low_csv), langs).items():
            for metric in METRICS:
                columns = [f"eval/{lang}/{metric}" for lang in members if f"eval/{lang}/{metric}" in final]
                if columns:
                    values = final.loc[rows, columns].to_numpy(dtype=float)
                    out[f"{group}/{metric}"][position] = nanmean(values, axis=1)
    return final.assign(**out)


def nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean skipping NaN; NaN where nothing is left (without numpy's warning for that case)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmean(values, axis=axis))


def best_per_cell(final: pd.DataFrame) -> pd.DataFrame:
    """One row per (student, ratio, adapter setting): the learning rate with the best mean objective.

    Numeric columns are means over the seeds of that learning rate; ``trial_ids`` lists them,
    ``n_trials`` counts every trial of the cell, ``n_seeds`` those at the chosen learning rate.
    """
    if final.empty:
        return final.assign(n_trials=0, n_seeds=0, trial_ids="")
    keys = [*CELL, "lr"]
    # Metrics are averaged over seeds; params (ints, text) are the same for every seed of a learning rate.
    labels = [c for c in _SAME_FOR_EVERY_SEED if c in final]
    floats = [c for c in final.columns if c not in keys + labels and pd.api.types.is_float_dtype(final[c])]
    grouped = final.groupby(keys, sort=True)
    runs = grouped[floats].mean().join(grouped[labels].first())
    runs["step"] = grouped["step"].max()  # seeds stopped at different steps: the furthest, not a fraction
    runs = runs.join(
        grouped.agg(
            n_seeds=("trial_id", "size"),
            trial_ids=("trial_id", lambda ids: ",".join(sorted(ids))),
            status=("status", lambda s: ",".join(sorted(set(s)))),
            stopped_by=("stopped_by", lambda s: ",".join(sorted(set(s)))),
        )
    )
    runs = runs.reset_index()
    # Best first; ties go to the smaller learning rate, so the choice never depends on file order.
    ranked = runs.sort_values([OBJECTIVE, "lr"], ascending=[False, True], na_position="last", kind="stable")
    best = ranked.groupby(CELL, sort=False).head(1)
    best = best.join(final.groupby(CELL).size().rename("n_trials"), on=CELL)
    return best.sort_values(["student_params", "ratio", "adapter_rank"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------------


def trial_rng(trial_id: str) -> np.random.Generator:
    """A generator per trial: its replicates do not change when other trials are added to the sweep."""
    return np.random.default_rng([SEED, zlib.crc32(trial_id.encode())])


def bootstrap_ci(
    values: Sequence[float], n_boot: int = N_BOOT, rng: np.random.Generator | None = None
) -> tuple[float, float]:
    """95% percentile interval of the mean of ``values`` (NaN skipped; NaN when nothing is left)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan, math.nan
    rng = rng or np.random.default_rng(SEED)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    return percentile_interval(means)


def percentile_interval(replicates: np.ndarray) -> tuple[float, float]:
    kept = replicates[~np.isnan(replicates)]
    if len(kept) == 0:
        return math.nan, math.nan
    low, high = np.percentile(kept, [2.5, 97.5])
    return float(low), float(high)


def example_replicates(
    examples: pd.DataFrame,
    groups: Mapping[str, Sequence[str]],
    reported: Mapping[str, float],
    rng: np.random.Generator,
    n_boot: int = N_BOOT,
) -> dict[str, np.ndarray]:
    """Bootstrap replicates over one trial's examples of each group column (``<group>/<metric>``),
    shifted to sit around the ``reported`` value (see the module docstring)."""
    # numpy, not a pandas groupby: this runs for every trial in the best-per-cell table.
    lang = examples["lang"].to_numpy(dtype=object)
    verdict = examples["verdict"].to_numpy(dtype=object)
    chrf_all = examples["chrf"].to_numpy(dtype=float)
    wrong_all, determined_all = verdict == "wrong", verdict != "undetermined"
    per_lang: dict[str, dict[str, tuple[float, np.ndarray]]] = {}
    for code in sorted(set(lang)):
        rows = lang == code
        chrf, wrong, determined = chrf_all[rows], wrong_all[rows], determined_all[rows]
        idx = rng.integers(0, len(chrf), size=(n_boot, len(chrf)))
        with np.errstate(invalid="ignore", divide="ignore"):
            per_lang[str(code)] = {
                "chrf": (chrf.mean(), chrf[idx].mean(axis=1)),
                "wlr": (
                    wrong.sum() / determined.sum() if determined.any() else math.nan,
                    wrong[idx].sum(axis=1) / determined[idx].sum(axis=1),
                ),
            }
    out = {}
    for group, members in groups.items():
        present = [lang for lang in members if lang in per_lang]
        for metric in METRICS:
            column = f"{group}/{metric}"
            value = reported.get(column, math.nan)
            if not present or math.isnan(value):
                out[column] = np.full(n_boot, value)
                continue
            point = nanmean(np.array([per_lang[lang][metric][0] for lang in present]), axis=0)
            reps = nanmean(np.stack([per_lang[lang][metric][1] for lang in present], axis=1), axis=1)
            out[column] = reps + (value - float(point)) if not math.isnan(point) else np.full(n_boot, value)
    return out


def seed_replicates(per_seed: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Replicates of the mean over seeds: draw the seeds with replacement and, for each drawn seed, one of
    its own replicates. ``per_seed``: one replicate array (n_boot,) per seed."""
    table = np.stack(per_seed)  # (seeds, n_boot)
    n_seeds, n_boot = table.shape
    if n_seeds == 1:
        return table[0]
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    draws = rng.integers(0, n_boot, size=(n_boot, n_seeds))
    return nanmean(table[seeds, draws], axis=1)


# ---------------------------------------------------------------------------------------------------
# Spearman's ρ
# ---------------------------------------------------------------------------------------------------


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ (``scipy.stats.spearmanr``: average ranks for ties) over the pairs without a NaN;
    NaN with fewer than 3 pairs or a constant side."""
    a, b = _pairs(x, y)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(stats.spearmanr(a, b).statistic)


def spearman_ci(x: Sequence[float], y: Sequence[float], n_boot: int = N_BOOT) -> tuple[float, float, float]:
    """(ρ, low, high): ρ with a 95% bootstrap interval over the pairs (trials)."""
    a, b = _pairs(x, y)
    if len(a) < 3:
        return math.nan, math.nan, math.nan
    idx = np.random.default_rng(SEED).integers(0, len(a), size=(n_boot, len(a)))
    replicates = np.array([spearman(a[i].tolist(), b[i].tolist()) for i in idx])
    low, high = percentile_interval(replicates)
    return spearman(a.tolist(), b.tolist()), low, high


# Searched settings besides the learning rate that a sweep may vary between trials.
SETTINGS = ("student", "teacher", "adapter_rank", "aux_translation", "method")


def varied_settings(final: pd.DataFrame) -> list[str]:
    """The settings of ``SETTINGS`` that take more than one value among the trials."""
    return [c for c in SETTINGS if c in final and final[c].nunique(dropna=True) > 1]


def partial_spearman(
    final: pd.DataFrame, x: str, y: str, controls: Sequence[str], n_boot: int = N_BOOT
) -> tuple[float, float, float]:
    """(ρ, low, high): Spearman's ρ of ``x`` and ``y`` with the categorical ``controls`` held fixed — the
    correlation of the ranks' residuals after each is regressed on the controls' categories (partial rank
    correlation) — with a 95% bootstrap interval over trials. In a random design the other searched
    settings (student, adapter, auxiliary translation) move ``y`` too; they widen the plain ρ's interval
    without being the effect asked about. NaN with fewer than controls + 3 trials."""
    rows = final[final[x].notna() & final[y].notna()].reset_index(drop=True)
    design = pd.get_dummies(rows[list(controls)].astype(str), drop_first=True).to_numpy(dtype=float)
    design = np.column_stack([np.ones(len(rows)), design])
    a, b = rows[x].to_numpy(dtype=float), rows[y].to_numpy(dtype=float)
    if len(rows) < design.shape[1] + 3:
        return math.nan, math.nan, math.nan
    idx = np.random.default_rng(SEED).integers(0, len(rows), size=(n_boot, len(rows)))
    replicates = np.array([_residual_rank_corr(a[i], b[i], design[i]) for i in idx])
    low, high = percentile_interval(replicates)
    return _residual_rank_corr(a, b, design), low, high


def _residual_rank_corr(a: np.ndarray, b: np.ndarray, design: np.ndarray) -> float:
    ranks = stats.rankdata(np.stack([a, b]), axis=1)  # average ranks for ties, per row
    residuals = ranks.T - design @ np.linalg.lstsq(design, ranks.T, rcond=None)[0]
    if np.any(residuals.std(axis=0) < 1e-9):  # a replicate where the controls explain everything
        return math.nan
    return float(np.corrcoef(residuals.T)[0, 1])


def adapter_effect(final: pd.DataFrame, column: str, n_boot: int = N_BOOT) -> tuple[float, float, float]:
    """(effect, low, high): adapters (LoRA) minus full finetuning in ``column`` at the same learning rate —
    the adapter coefficient of the least-squares fit ``column ~ 1 + log10(lr) + [adapter]`` over the
    trials' final evaluations — with a 95% bootstrap interval over trials, resampled within each arm.
    NaN when an arm has fewer than 2 trials with a value."""
    rows = final[final[column].notna() & final["lr"].notna()]
    lora = (rows["adapter_rank"] > 0).to_numpy()
    if min(lora.sum(), (~lora).sum()) < 2:
        return math.nan, math.nan, math.nan
    x = np.column_stack([np.ones(len(rows)), np.log10(rows["lr"].to_numpy(dtype=float)), lora])
    y = rows[column].to_numpy(dtype=float)
    rng = np.random.default_rng(SEED)
    arms = [np.flatnonzero(lora), np.flatnonzero(~lora)]
    replicates = np.array(
        [
            _adapter_coefficient(x[idx], y[idx])
            for idx in (np.concatenate([rng.choice(arm, len(arm)) for arm in arms]) for _ in range(n_boot))
        ]
    )
    low, high = percentile_interval(replicates)
    return _adapter_coefficient(x, y), low, high


def _adapter_coefficient(x: np.ndarray, y: np.ndarray) -> float:
    if np.linalg.matrix_rank(x) < x.shape[1]:  # a replicate with one learning rate cannot adjust for it
        return math.nan
    return float(np.linalg.lstsq(x, y, rcond=None)[0][2])


def _pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep]


# ---------------------------------------------------------------------------------------------------
# Fitted curves
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurveFit:
    student: str
    adapter: str
    metric: str
    coef: tuple[float, float, float]  # (a, b, c): y = a + b·x + c·x², x = log2(ratio)
    best_ratio: float
    best_ratio_low: float
    best_ratio_high: float
    n_points: int

    def predict(self, ratio: np.ndarray) -> np.ndarray:
        return np.asarray(polynomial.polyval(np.log2(ratio), self.coef))


def fit_curve(
    ratios: Sequence[float],
    values: Sequence[float],
    replicates: np.ndarray | None = None,
    *,
    student: str = "",
    adapter: str = "",
    metric: str = "",
) -> CurveFit | None:
    """Quadratic in log2(ratio) (a line with two distinct ratios); None with fewer than two.

    ``replicates`` (points × n_boot) gives the best ratio's interval; without it the interval is the
    best ratio itself.
    """
    x = np.log2(np.asarray(ratios, dtype=float))
    y = np.asarray(values, dtype=float)
    keep = ~np.isnan(y)
    degree = min(2, len(np.unique(x[keep])) - 1)
    if degree < 1:
        return None
    x, y = x[keep], y[keep]
    coef = np.zeros(3)
    coef[: degree + 1] = polynomial.polyfit(x, y, degree)
    best = float(2 ** _argmax_x(coef[:, None], x.min(), x.max())[0])
    low = high = best
    if replicates is not None:
        reps = np.asarray(replicates, dtype=float)[keep]
        reps = np.where(np.isnan(reps), y[:, None], reps)  # a replicate without a value keeps the point
        rep_coef = np.zeros((3, reps.shape[1]))
        rep_coef[: degree + 1] = polynomial.polyfit(x, reps, degree)
        low, high = (float(2**v) for v in np.percentile(_argmax_x(rep_coef, x.min(), x.max()), [2.5, 97.5]))
    return CurveFit(student, adapter, metric, (coef[0], coef[1], coef[2]), best, low, high, len(x))


def _argmax_x(coef: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Where each quadratic (columns of ``coef``: a, b, c) peaks on [lo, hi]: its vertex when it opens
    downwards and lies inside, else the better end."""
    _, b, c = coef
    ends = np.where(polynomial.polyval(hi, coef) > polynomial.polyval(lo, coef), hi, lo)
    with np.errstate(invalid="ignore", divide="ignore"):
        vertex = -b / (2 * c)
    inside = (c < 0) & (vertex > lo) & (vertex < hi)
    return np.where(inside, vertex, ends)
