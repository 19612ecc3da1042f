"""Confirmed cells on the test split, and each method's gain over the no-distillation control.

The confirm stage (mmkd.sweep.confirm) trains each cell's dev-selected configuration with several seeds
and evaluates it on the test split; this module turns those trials into two tables:

- ``confirm.csv``: one row per confirmed cell (student, teacher, adapter setting, method) with the mean
  over seeds of every group's test chrF and WLR (``test/<group>/<metric>``) and its 95% interval
  (``_lo``, ``_hi``);
- ``gain.csv``: per (student, teacher, adapter setting), each method minus ``none`` (MMKD's benefit), per
  group and metric, with its 95% interval (``ci_low``, ``ci_high``).

Intervals are percentile bootstraps over seeds *and* items. The test items are parallel: item ``id`` is
the same record in every language, so a replicate draws ids with replacement once and uses that draw in
every language (a language's items are not independent of another's; resampling them apart would make a
group's interval too narrow). It draws the seeds with replacement too; a gain is *paired*: both methods
get the same item draw and the same seed draw (seed k of one against seed k of the other), so what the
two arms share (hard items, a lucky seed's data order) cancels. Per language, chrF is the mean sentence
chrF over the drawn items and WLR is wrong / determined over them; a group is the mean over its
languages. chrF replicates are shifted by (reported corpus chrF − mean sentence chrF) to sit around the
reported value, as the search-stage intervals are (mmkd.curves.fit).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmkd import names
from mmkd.curves.aggregate import read_examples
from mmkd.curves.fit import (
    GROUPS,
    METRICS,
    N_BOOT,
    SEED,
    CurveFit,
    adapter_label,
    fit_curve,
    group_languages,
    nanmean,
    percentile_interval,
)

CONTROL = "none"
PLAN_FILE = "confirm_plan.json"  # <exp>/mmkd/: written by mmkd.sweep.confirm (which imports Ray; we may not)
CONFIRM_CELL = ["student", "teacher", "adapter_rank", "method"]
PAIR = ["student", "teacher", "adapter_rank"]
COLUMNS = [f"{group}/{metric}" for group in GROUPS for metric in METRICS]


@dataclass(frozen=True)
class Items:
    """One confirm trial's test rows as (language × item) arrays over a shared item list; an absent
    (language, item) has weight 0 in ``present`` (and in ``determined``)."""

    chrf: np.ndarray
    present: np.ndarray
    wrong: np.ndarray
    determined: np.ndarray

    @classmethod
    def from_examples(cls, examples: pd.DataFrame, langs: Sequence[str], items: Sequence[str]) -> Items:
        shape = (len(langs), len(items))
        chrf, present = np.zeros(shape), np.zeros(shape)
        wrong, determined = np.zeros(shape), np.zeros(shape)
        li = {lang: i for i, lang in enumerate(langs)}
        ii = {item: i for i, item in enumerate(items)}
        for lang, item, score, verdict in examples[["lang", "id", "chrf", "verdict"]].itertuples(index=False):
            if lang in li and item in ii:
                at = li[lang], ii[item]
                chrf[at], present[at] = score, 1.0
                wrong[at], determined[at] = float(verdict == "wrong"), float(verdict != "undetermined")
        return cls(chrf, present, wrong, determined)

    def per_language(self, weights: np.ndarray, metric: str) -> np.ndarray:
        """(replicates × languages): each language's metric under item ``weights`` (replicates × items)."""
        if metric == "chrf":
            num, den = weights @ (self.chrf * self.present).T, weights @ self.present.T
        else:
            num, den = weights @ self.wrong.T, weights @ self.determined.T
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def draws(
    n_items: int, n_seeds: int, rng: np.random.Generator, n_boot: int = N_BOOT
) -> tuple[np.ndarray, np.ndarray]:
    """Item weights (replicates × items: how often each id was drawn) and seed draws (replicates × seeds)."""
    picked = rng.integers(0, n_items, size=(n_boot, n_items))
    weights = np.stack([np.bincount(row, minlength=n_items) for row in picked]).astype(float)
    return weights, rng.integers(0, n_seeds, size=(n_boot, n_seeds))


def replicates(
    seeds: Sequence[Items],
    members: Mapping[str, Sequence[int]],
    weights: np.ndarray,
    seed_draws: np.ndarray,
) -> dict[str, np.ndarray]:
    """``<group>/<metric>`` → the mean over drawn seeds of the group's metric under each item draw.

    ``members``: each group's language indices; ``weights`` (replicates × items), ``seed_draws``
    (replicates × drawn seeds, indices into ``seeds``). Unshifted: sentence-level chrF.
    """
    out = {}
    for group, rows in members.items():
        for metric in METRICS:
            if not rows:
                out[f"{group}/{metric}"] = np.full(len(weights), np.nan)
                continue
            per_seed = np.stack(
                [nanmean(s.per_language(weights, metric)[:, list(rows)], axis=1) for s in seeds], axis=1
            )  # replicates × seeds
            out[f"{group}/{metric}"] = nanmean(np.take_along_axis(per_seed, seed_draws, axis=1), axis=1)
    return out


@dataclass
class Cell:
    """One confirmed cell: its trials (one per seed) and what they reported."""

    key: tuple[str, str, int, str]
    rows: pd.DataFrame  # the trials' final rows, by seed
    items: dict[int, Items]  # seed → test rows (only seeds whose rows were found)


def confirmed_cells(df: pd.DataFrame, exp_dir: Path) -> tuple[list[Cell], list[str], list[str]]:
    """The confirm stage's cells from the results table, the test languages and the item ids."""
    rows = df[(df["stage"] == "confirm") & df.get(names.TEST_SCORE, pd.Series(index=df.index)).notna()]
    final = rows.sort_values(["trial_id", "step"]).groupby("trial_id").tail(1)
    tested = [c.split("/") for c in final.columns if names.per_language(c)]
    langs = sorted({parts[1] for parts in tested if parts[0] == names.TEST and parts[2] == names.CHRF})
    found: dict[str, pd.DataFrame] = {}
    for row in final.itertuples(index=False):
        examples = read_examples(exp_dir / str(row.trial_dir), int(row.step), split="test")
        if examples is not None:
            found[str(row.trial_id)] = examples
    items = sorted({str(i) for ex in found.values() for i in ex["id"]})
    cells = []
    for key, group in final.groupby(CONFIRM_CELL, sort=True):
        group = group.sort_values("seed")
        tables = {
            int(r.seed): Items.from_examples(found[str(r.trial_id)], langs, items)
            for r in group.itertuples(index=False)
            if str(r.trial_id) in found
        }
        cells.append(Cell((str(key[0]), str(key[1]), int(key[2]), str(key[3])), group, tables))
    return cells, langs, items


def with_plan(df: pd.DataFrame, exp_dir: Path) -> pd.DataFrame:
    """``df`` with each confirm trial's ``selected_from`` (the search trial it repeats) and ``selected_on``
    (the dev metric that picked it), from the stage's plan (a trial's Tune config holds its index)."""
    try:
        plan = json.loads((exp_dir / "mmkd" / PLAN_FILE).read_text(encoding="utf-8"))["trials"]
    except (OSError, ValueError, KeyError):
        return df
    if "confirm" not in df:
        return df
    index = pd.to_numeric(df["confirm"], errors="coerce")
    picked = [plan[int(i)] if i == i and 0 <= i < len(plan) else {} for i in index]
    return df.assign(
        selected_from=[p.get("selected_from", "") for p in picked],
        selected_on=[p.get("selected_on", "") for p in picked],
    )


def reported(rows: pd.DataFrame, groups: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Mean over the cell's seeds of each group's reported test metric (mean over its languages)."""
    out = {}
    for group, langs in groups.items():
        for metric in METRICS:
            cols = [f"test/{lang}/{metric}" for lang in langs if f"test/{lang}/{metric}" in rows]
            values = nanmean(rows[cols].to_numpy(dtype=float), axis=1) if cols else np.array([np.nan])
            out[f"{group}/{metric}"] = float(nanmean(values, axis=0))
    return out


def shifted(
    reps: dict[str, np.ndarray], point: dict[str, np.ndarray], value: dict[str, float]
) -> dict[str, np.ndarray]:
    """Replicates moved by (reported value − the same statistic from the examples)."""
    return {
        k: reps[k] + (value[k] - float(point[k][0]))
        if not math.isnan(float(point[k][0]))
        else np.full(len(reps[k]), value[k])
        for k in reps
    }


def _rng(key: Sequence[object]) -> np.random.Generator:
    """Per (student, adapter): every arm of a gain and its control share it, and adding cells elsewhere
    in the sweep does not change it."""
    return np.random.default_rng([SEED, zlib.crc32("|".join(map(str, key)).encode())])


Stats = tuple[dict[str, float], dict[str, np.ndarray]]  # reported values, their bootstrap replicates


def confirm_tables(df: pd.DataFrame, exp_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(confirm table, gain table); the gain table keeps each row's bootstrap ``replicates`` (for the
    fitted gain curves; not written). Cells of one student and adapter setting share their item and
    seed draws, so every gain is paired by item and seed with its control: the same teacher's ``none``
    cell, or — the control reads no teacher, and the grid trains it once (SweepConfig.cells) — the
    student's one ``none`` cell."""
    cells, langs, items = confirmed_cells(with_plan(df, exp_dir), exp_dir)
    confirm_rows, gain_rows = [], []
    by_student: dict[tuple[str, int], list[Cell]] = {}
    for cell in cells:
        by_student.setdefault((cell.key[0], cell.key[2]), []).append(cell)
    for key, members in by_student.items():
        # Seeds every arm has examples of: a gain pairs seed k with seed k.
        seeds = sorted(set.intersection(*(set(c.items) for c in members)))
        weights, seed_draws = draws(len(items), len(seeds), _rng(key)) if seeds and items else (None, None)
        stats: dict[tuple[str, str], Stats] = {}
        for cell in members:
            used = cell.rows[cell.rows["seed"].isin(seeds)] if seeds else cell.rows
            stats[cell.key[1], cell.key[3]] = _cell_stats(
                cell, used, seeds, langs, len(items), weights, seed_draws
            )
            confirm_rows.append(_confirm_row(cell, used, *stats[cell.key[1], cell.key[3]], len(items)))
        controls = {c.key[1]: c for c in members if c.key[3] == CONTROL}
        for cell in members:
            teacher, method = cell.key[1], cell.key[3]
            control = controls.get(teacher) or (next(iter(controls.values())) if len(controls) == 1 else None)
            if method != CONTROL and control is not None:
                first = cell.rows.iloc[0].copy()
                first["control_lr"] = control.rows.iloc[0]["lr"]
                base = stats[control.key[1], CONTROL]
                gain_rows += _gain_rows(first, method, *stats[teacher, method], *base, len(seeds), len(items))
    return _sorted(pd.DataFrame(confirm_rows)), _sorted(pd.DataFrame(gain_rows), ["group", "metric"])


def _cell_stats(
    cell: Cell,
    used: pd.DataFrame,
    seeds: Sequence[int],
    langs: Sequence[str],
    n_items: int,
    weights: np.ndarray | None,
    seed_draws: np.ndarray | None,
) -> Stats:
    """The cell's reported group metrics and their replicates under the shared item and seed draws."""
    first = cell.rows.iloc[0]
    groups = group_languages(str(first["source_lang"]), str(first["low_resource_langs"]), langs)
    value = reported(used, groups)
    reps = {k: np.full(N_BOOT, np.nan) for k in value}
    if weights is not None and seed_draws is not None:
        index = {lang: i for i, lang in enumerate(langs)}
        rows = {g: [index[lang] for lang in ls] for g, ls in groups.items()}
        tables = [cell.items[s] for s in seeds]
        point = replicates(tables, rows, np.ones((1, n_items)), np.arange(len(seeds))[None, :])
        reps = shifted(replicates(tables, rows, weights, seed_draws), point, value)
    return value, reps


def _sorted(table: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    if table.empty:
        return table
    keys = ["student_params", "ratio", "adapter_rank", "method", *extra]
    return table.sort_values(keys, kind="stable").reset_index(drop=True)


def _confirm_row(
    cell: Cell, used: pd.DataFrame, value: dict[str, float], reps: dict[str, np.ndarray], n_items: int
) -> dict[str, object]:
    first = cell.rows.iloc[0]
    row: dict[str, object] = {
        "student": cell.key[0],
        "student_params": first["student_params"],
        "teacher": cell.key[1],
        "teacher_params": first["teacher_params"],
        "ratio": first["ratio"],
        "ratio_total": first.get("ratio_total", first["ratio"]),
        "adapter_rank": cell.key[2],
        "adapter": adapter_label(cell.key[2]),
        "method": cell.key[3],
        "lr": first["lr"],
        "n_seeds": len(used),
        "seeds": ",".join(str(int(s)) for s in used["seed"]),
        "n_items": n_items,
        "selected_on": first.get("selected_on", ""),
        "selected_from": first.get("selected_from", ""),
    }
    for column in COLUMNS:
        low, high = percentile_interval(reps[column])
        row |= {f"test/{column}": value[column], f"test/{column}_lo": low, f"test/{column}_hi": high}
    return row


def _gain_rows(
    first: pd.Series,
    method: str,
    value: dict[str, float],
    reps: dict[str, np.ndarray],
    base: dict[str, float],
    base_reps: dict[str, np.ndarray],
    n_seeds: int,
    n_items: int,
) -> list[dict[str, object]]:
    rows = []
    for column in COLUMNS:
        group, metric = column.split("/")
        diff = reps[column] - base_reps[column]
        low, high = percentile_interval(diff)
        rows.append(
            {
                "student": first["student"],
                "student_params": first["student_params"],
                "teacher": first["teacher"],
                "ratio": first["ratio"],
                "ratio_total": first.get("ratio_total", first["ratio"]),
                "adapter_rank": int(first["adapter_rank"]),
                "adapter": adapter_label(first["adapter_rank"]),
                "method": method,
                "lr": first["lr"],
                "control_lr": first["control_lr"],
                "group": group,
                "metric": metric,
                "value": value[column],
                "control": base[column],
                "gain": value[column] - base[column],
                "ci_low": low,
                "ci_high": high,
                "n_seeds": n_seeds,
                "n_items": n_items,
                "replicates": diff,
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------------
# Files and the report's first section
# ---------------------------------------------------------------------------------------------------

MIN_FIT_RATIOS = 4  # a quadratic through 3 points always fits: its best ratio would mean nothing
SECTION_GROUPS = ("low_resource", "zero_shot_high", "zero_shot", "source")


def gain_fits(gain: pd.DataFrame, method: str) -> dict[tuple[str, str, str], CurveFit]:
    """(student, adapter, group) → the fitted chrF gain curve of ``method``, where it has ≥ 4 ratios."""
    fits = {}
    chrf = gain[(gain["metric"] == "chrf") & (gain["method"] == method)]
    for (student, adapter, group), points in chrf.groupby(["student", "adapter", "group"], sort=True):
        if points["ratio"].nunique() < MIN_FIT_RATIOS:
            continue
        fit = fit_curve(
            points["ratio"].tolist(),
            points["gain"].tolist(),
            np.stack(points["replicates"].tolist()),
            student=str(student),
            adapter=str(adapter),
            metric=f"{group}/chrf",
        )
        if fit is not None:
            fits[(str(student), str(adapter), str(group))] = fit
    return fits


def write_confirm(df: pd.DataFrame, exp_dir: Path, out: Path) -> tuple[list[str], list[Path]]:
    """``confirm.csv``, ``gain.csv`` and ``gain_vs_ratio.png`` in ``out``; the report's first section.
    Nothing when the sweep has no confirmed trial yet."""
    from mmkd.curves import plot

    if "stage" not in df or not (df["stage"] == "confirm").any():
        return [], []
    confirm, gain = confirm_tables(df, exp_dir)
    if confirm.empty:
        return ["## MMKD gain vs teacher/student ratio", "", "No confirmed trial has finished yet.", ""], []
    files = [out / "confirm.csv", out / "gain.csv"]
    confirm.to_csv(files[0], index=False, lineterminator="\n", float_format="%.6g")
    written = gain.drop(columns="replicates") if not gain.empty else pd.DataFrame(columns=GAIN_COLUMNS)
    written.to_csv(files[1], index=False, lineterminator="\n", float_format="%.6g")
    stage = df[df["stage"] == "confirm"]
    fewest, most = int(confirm["n_seeds"].min()), int(confirm["n_seeds"].max())
    lines = [
        "## MMKD gain vs teacher/student ratio",
        "",
        f"Confirm stage: {stage['trial_id'].nunique()} trials, {len(confirm)} cells confirmed "
        f"({fewest if fewest == most else f'{fewest}-{most}'} seeds each).",
        "",
        _GAIN_NOTE,
        "",
    ]
    if gain.empty:
        return [*lines, "No cell was confirmed with both a method and the control (`none`).", ""], files
    method = "mmkd" if (gain["method"] == "mmkd").any() else str(gain["method"].iloc[0])
    fits = gain_fits(gain, method)
    png = plot.gain_vs_ratio(gain[gain["method"] == method], fits, out / "gain_vs_ratio.png")
    lines += [f"![chrF gain of {method} over no distillation]({png.name})", ""]
    lines += _gain_lines(gain, fits, method)
    return lines, [*files, png]


GAIN_COLUMNS = [
    *("student", "student_params", "teacher", "ratio", "ratio_total", "adapter_rank", "adapter", "method"),
    *("lr", "control_lr"),
    *("group", "metric", "value", "control", "gain", "ci_low", "ci_high", "n_seeds", "n_items"),
]
_GAIN_NOTE = (
    "Confirmed cells only: each cell's configuration was picked on dev (see confirm.csv, `selected_on`), "
    "retrained with fresh seeds and scored on the test split. Gain = the method's test metric minus the "
    "no-distillation control's (`none`), same student and adapter setting (the control reads no teacher: "
    "one control serves every teacher). Brackets: 95% bootstrap intervals, paired (both arms get the same "
    "draw of seeds and of test items) and resampling items by id jointly across languages; they do not "
    "include the search's choice of configuration (compare the arms' learning rates). A best ratio is "
    "fitted only with ≥ 4 ratios."
)


def _gain_lines(gain: pd.DataFrame, fits: Mapping[tuple[str, str, str], CurveFit], method: str) -> list[str]:
    lines = []
    chosen = gain[gain["method"] == method]
    for student, rows in chosen.groupby("student", sort=False):
        lines += [f"### Student {student}", "", *_gain_table(rows), ""]
        lines += [*_fit_lines(str(student), rows, fits), ""]
    return lines


def _gain_table(rows: pd.DataFrame) -> list[str]:
    lines = [
        "| group | adapter | ratio | teacher | chrF: method / control | chrF gain | WLR gain "
        "| lr: method / control | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for group in SECTION_GROUPS:
        for (adapter, ratio), cell in rows[rows["group"] == group].groupby(["adapter", "ratio"], sort=False):
            by_metric = {r.metric: r for r in cell.itertuples(index=False)}
            c, w = by_metric["chrf"], by_metric["wlr"]
            chrf, wlr = _ci(c.gain, c.ci_low, c.ci_high, 1), _ci(w.gain, w.ci_low, w.ci_high, 3)
            levels, rates = f"{c.value:.1f} / {c.control:.1f}", f"{c.lr:.2g} / {c.control_lr:.2g}"
            lines.append(
                f"| {group} | {adapter} | {ratio:.3g} | {c.teacher} | {levels} | {chrf} | {wlr} | {rates} "
                f"| {c.n_seeds} |"
            )
    return lines


def _fit_lines(student: str, rows: pd.DataFrame, fits: Mapping[tuple[str, str, str], CurveFit]) -> list[str]:
    lines = []
    for group in SECTION_GROUPS:
        for adapter, cells in rows[(rows["group"] == group) & (rows["metric"] == "chrf")].groupby("adapter"):
            n = cells["ratio"].nunique()
            fit = fits.get((student, str(adapter), group))
            if fit is None:
                lines.append(f"- {group}, {adapter}: {n} ratios, too few for a fit (needs {MIN_FIT_RATIOS}).")
            else:
                lines.append(
                    f"- {group}, {adapter}: the chrF gain peaks at ratio ≈ {fit.best_ratio:.3g} "
                    f"[{fit.best_ratio_low:.3g}, {fit.best_ratio_high:.3g}] ({n} ratios)."
                )
    return lines


def _ci(value: float, low: float, high: float, digits: int) -> str:
    if math.isnan(value):
        return "–"
    if math.isnan(low):
        return f"{value:+.{digits}f}"
    return f"{value:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
