"""``mmkd curves``: a sweep → tables, fitted curves, PNG plots and a Markdown report.

    mmkd curves NAME_OR_PATH [--out DIR]     # default DIR: <experiment>/mmkd/curves

Writes ``results.parquet`` / ``results.csv`` (the tidy table, one row per trial × evaluation),
``best_per_cell.csv``, ``fits.csv``, ``score_vs_ratio.png``, ``wlr_vs_ratio.png``, ``lr_vs_wlr.png``,
``heatmap_chrf.png``, ``heatmap_wlr.png`` and ``report.md``, which embeds them.

Works on finished, partial and still-running sweeps (it reads whatever evaluations exist) and never
imports Ray. The same files give the same bytes: tables are sorted, bootstraps seeded, PNGs carry no
version or time.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mmkd import names
from mmkd.curves import pareto, plot
from mmkd.curves.aggregate import (
    FINISHED,
    load_results,
    read_examples,
    trial_states,
    trial_status,
    write_tables,
)
from mmkd.curves.fit import (
    GROUP_COLUMNS,
    N_BOOT,
    OBJECTIVE,
    PANELS,
    CurveFit,
    adapter_effect,
    add_groups,
    best_per_cell,
    example_replicates,
    final_rows,
    fit_curve,
    group_languages,
    languages,
    partial_spearman,
    percentile_interval,
    seed_replicates,
    spearman_ci,
    trial_rng,
    varied_settings,
)
from mmkd.curves.gain import write_confirm
from mmkd.errors import UserInputError
from mmkd.eval.baselines import read_baselines

REPORT = "report.md"
CELL_COLUMNS = [
    "student",
    "student_params",
    "teacher",
    "teacher_params",
    "ratio",
    "adapter_rank",
    "adapter",
    "lr",
    "n_trials",
    "n_seeds",
    "trial_ids",
    "step",
    "status",
    "stopped_by",
    "ci_over",
    OBJECTIVE,
]
# Fitted per (student, adapter): the objective, and the chrF of each panel (drawn on the score plot).
FIT_METRICS = ["zero_shot/chrf", *(f"{group}/chrf" for group in PANELS)]


def build_curves(exp_dir: Path, out_dir: Path | None = None) -> Path:
    """Everything from the experiment at ``exp_dir`` into ``out_dir``; returns the report's path."""
    if not exp_dir.is_dir():
        raise UserInputError(f"{exp_dir}: no such experiment directory")
    out = out_dir or exp_dir / "mmkd" / "curves"
    out.mkdir(parents=True, exist_ok=True)
    states = trial_states(exp_dir)
    df = load_results(exp_dir, states)
    statuses = trial_status(exp_dir, states)
    summary, confirmed, tables = _opening(exp_dir, df, statuses, out)
    final = final_rows(search_stage(df))
    if final.empty:
        return _write_report(out, [*summary, *confirmed, "No evaluations yet.", ""])

    best = with_intervals(best_per_cell(final), final, exp_dir)
    baselines = read_baselines(exp_dir / "mmkd")
    if baselines is not None:
        baselines = add_groups(baselines, languages(baselines))
    fits = curve_fits(best)
    rho = {
        setting: spearman_ci(rows["lr"].tolist(), rows["zero_shot/wlr"].tolist())
        for setting, rows in (
            ("all", final),
            ("full", final[final["adapter_rank"] == 0]),
            ("adapters", final[final["adapter_rank"] > 0]),
        )
    }
    langs, lang_groups = ordered_languages(df, final)
    cell_table = best[[*CELL_COLUMNS, *_with_ci(GROUP_COLUMNS), *_language_columns(langs, best)]]
    fit_table = _fit_table(fits)
    # Derived numbers to 6 significant digits: readable, and the last bits of a least-squares fit or a
    # mean may differ between BLAS builds; the same input still gives the same bytes.
    cell_table.to_csv(out / "best_per_cell.csv", index=False, lineterminator="\n", float_format="%.6g")
    fit_table.to_csv(out / "fits.csv", index=False, lineterminator="\n", float_format="%.6g")

    pngs = _plots(best, final, fits, rho, langs, lang_groups, baselines, out)
    lines = summary + confirmed + _baseline_section(baselines)
    lines += _findings(rho, fits, final)
    cells = _markdown(_cell_view(best))
    lines += ["## Best learning rate per cell", "", _search_note(df) + _cell_note(exp_dir), "", cells, ""]
    lines += ["## Fitted curves", "", _FIT_NOTE, "", _markdown(_fit_view(fit_table)), ""]
    lines += pareto.section(final, pareto.sweep_objectives(exp_dir), out, _markdown)
    for title, png in pngs:
        lines += [f"## {title}", "", f"![{title}]({png.name})", ""]
    files = [*tables, out / "best_per_cell.csv", out / "fits.csv"]
    lines += ["## Files", "", *(f"- [{p.name}]({p.name})" for p in files), "", "## Method", "", _METHOD, ""]
    return _write_report(out, lines)


def _plots(
    best: pd.DataFrame,
    final: pd.DataFrame,
    fits: dict[tuple[str, str, str], CurveFit],
    rho: dict[str, tuple[float, float, float]],
    langs: list[str],
    lang_groups: dict[str, str],
    baselines: pd.DataFrame | None,
    out: Path,
) -> list[tuple[str, Path]]:
    """The report's figures, each (title, png)."""
    return [
        (
            "Score vs teacher/student ratio",
            plot.versus_ratio(best, "chrf", fits, out / "score_vs_ratio.png", baselines),
        ),
        (
            "Wrong-language rate vs ratio",
            plot.versus_ratio(best, "wlr", {}, out / "wlr_vs_ratio.png", baselines),
        ),
        (
            "Learning rate vs wrong-language rate",
            plot.lr_vs_wlr(final, rho, out / "lr_vs_wlr.png", baselines),
        ),
        ("chrF per language", plot.heatmap(best, langs, lang_groups, "chrf", out / "heatmap_chrf.png")),
        (
            "Wrong-language rate per language",
            plot.heatmap(best, langs, lang_groups, "wlr", out / "heatmap_wlr.png"),
        ),
    ]


# ---------------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------------


def search_stage(df: pd.DataFrame) -> pd.DataFrame:
    """The search stage's rows, of one method: ``mmkd`` when the sweep compared several (the control's
    search trials stay in results.csv; its confirmed numbers are in confirm.csv and gain.csv)."""
    rows = df[df["stage"] == "search"] if "stage" in df else df
    if "method" in rows and rows["method"].nunique() > 1:
        keep = "mmkd" if (rows["method"] == "mmkd").any() else sorted(rows["method"].dropna().unique())[-1]
        rows = rows[rows["method"] == keep]
    return rows


def _opening(
    exp_dir: Path, df: pd.DataFrame, statuses: dict[str, str], out: Path
) -> tuple[list[str], list[str], list[Path]]:
    """The tables, the summary of the search stage, and the confirm stage's section with its files:
    test-split numbers come first; the search stage's, below them, are dev-selected."""
    tables = write_tables(df, out)
    confirmed, confirm_files = write_confirm(df, exp_dir, out)
    searched = df[df["stage"] == "search"] if "stage" in df else df
    summary = _summary(exp_dir, searched, statuses, final_rows(searched)) + _group_note(df)
    return summary, confirmed, [*tables, *confirm_files]


def _group_note(df: pd.DataFrame) -> list[str]:
    """Say so when the "low-resource" panels hold a task's lowest class rather than Joshi classes 0-2."""
    names = (
        set(df["low_resource_group"].dropna().astype(str)) - {"low_resource"}
        if "low_resource_group" in df
        else set()
    )
    if not names:
        return []
    return [
        f"**No low-resource language**: the task has no Joshi class 0–2 language; the tables' and plots' "
        f"low-resource group holds its lowest class instead ({', '.join(sorted(names))}).",
        "",
    ]


def _search_note(df: pd.DataFrame) -> str:
    methods = sorted(df["method"].dropna().astype(str).unique()) if "method" in df else []
    shown = search_stage(df)["method"].iloc[0] if len(methods) > 1 else None
    only = f" Method `{shown}` only (of {', '.join(methods)})." if shown else ""
    return (
        "**Search stage, dev-selected**: each cell's number is the dev score its learning rate was picked "
        "on, so it overstates that configuration (winner's curse); confirmed test numbers are above."
        f"{only}\n\n"
    )


def with_intervals(best: pd.DataFrame, final: pd.DataFrame, exp_dir: Path) -> pd.DataFrame:
    """``best`` with ``<group>/<metric>_lo`` / ``_hi`` (95% bootstrap) and a ``replicates`` column: the
    bootstrap replicates of every group column (for the fitted curves' intervals)."""
    by_id = final.set_index("trial_id")
    langs = languages(final)
    intervals, replicates, covered = [], [], []
    for cell in best.itertuples(index=False):
        trial_ids = str(cell.trial_ids).split(",")
        per_seed: dict[str, list[np.ndarray]] = {column: [] for column in GROUP_COLUMNS}
        with_examples = 0
        for trial_id in trial_ids:
            row = by_id.loc[trial_id]
            reported = {column: float(row[column]) for column in GROUP_COLUMNS}
            examples = read_examples(exp_dir / str(row["trial_dir"]), int(row["step"]))
            if examples is None:
                reps = {column: np.full(N_BOOT, value) for column, value in reported.items()}
            else:
                with_examples += 1
                evaluated = [lang for lang in langs if not pd.isna(row.get(f"eval/{lang}/chrf"))]
                groups = group_languages(str(row["source_lang"]), str(row["low_resource_langs"]), evaluated)
                reps = example_replicates(examples, groups, reported, trial_rng(trial_id))
            for column in GROUP_COLUMNS:
                per_seed[column].append(reps[column])
        rng = trial_rng(str(cell.trial_ids))  # keyed by the cell's trials, like each trial's own
        cell_reps = {column: seed_replicates(per_seed[column], rng) for column in GROUP_COLUMNS}
        replicates.append(cell_reps)
        intervals.append(
            {
                key: value
                for column in GROUP_COLUMNS
                for key, value in zip(
                    (f"{column}_lo", f"{column}_hi"), percentile_interval(cell_reps[column]), strict=True
                )
            }
        )
        over = (["examples"] if with_examples else []) + (["seeds"] if len(trial_ids) > 1 else [])
        covered.append("+".join(over) or "none")
    return best.assign(**pd.DataFrame(intervals, index=best.index), ci_over=covered, replicates=replicates)


def curve_fits(best: pd.DataFrame) -> dict[tuple[str, str, str], CurveFit]:
    """(student, adapter, metric) → fitted curve over the cells' ratios, for each of ``FIT_METRICS``."""
    fits = {}
    for (student, adapter), cells in best.groupby(["student", "adapter"], sort=True):
        for metric in FIT_METRICS:
            reps = np.stack([r[metric] for r in cells["replicates"]])
            fit = fit_curve(
                cells["ratio"].tolist(),
                cells[metric].tolist(),
                reps,
                student=str(student),
                adapter=str(adapter),
                metric=metric,
            )
            if fit is not None:
                fits[(str(student), str(adapter), metric)] = fit
    return fits


def ordered_languages(df: pd.DataFrame, final: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """Languages in panel order (source, zero-shot high-resource, low-resource), and each one's group
    (by the sweep's most common source/low-resource setting)."""
    langs = languages(df)
    counts = final[["source_lang", "low_resource_langs"]].fillna("").astype(str).value_counts()
    setting = counts.sort_index().idxmax()  # ties to the first in name order: never to file order
    groups = group_languages(setting[0], setting[1], langs)
    of = {lang: group for group in PANELS for lang in groups[group]}
    rank = {group: i for i, group in enumerate(PANELS)}
    ordered = sorted(langs, key=lambda lang: (rank.get(of.get(lang, ""), len(PANELS)), lang))
    return ordered, of


def _with_ci(columns: list[str]) -> list[str]:
    return [name for column in columns for name in (column, f"{column}_lo", f"{column}_hi")]


def _language_columns(langs: list[str], best: pd.DataFrame) -> list[str]:
    return [c for lang in langs for c in (f"eval/{lang}/chrf", f"eval/{lang}/wlr") if c in best]


def _fit_table(fits: dict[tuple[str, str, str], CurveFit]) -> pd.DataFrame:
    columns = [
        "student",
        "adapter",
        "metric",
        "a",
        "b",
        "c",
        "best_ratio",
        "best_ratio_lo",
        "best_ratio_hi",
        "n_points",
    ]
    rows = [
        [
            f.student,
            f.adapter,
            f.metric,
            *f.coef,
            f.best_ratio,
            f.best_ratio_low,
            f.best_ratio_high,
            f.n_points,
        ]
        for f in fits.values()
    ]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------------


def _cell_note(exp_dir: Path) -> str:
    return (
        "A cell is (student size, teacher/student ratio, adapter setting); its row is the learning rate with "
        f"the best zero-shot {objective_metric(exp_dir)} (the sweep objective) at the final evaluation, "
        "averaged over seeds when repeated. Brackets: 95% bootstrap intervals (over evaluation examples, and "
        "over seeds when a cell was repeated; `ci_over` in best_per_cell.csv). A trial still running counts "
        "with its latest evaluation."
    )


def objective_metric(exp_dir: Path) -> str:
    """How the report names what ``eval/score`` averages: the task's primary metric (``F1`` for QA and
    NER, ``chrF`` otherwise), from the sweep's stored config; ``chrF`` without one (a bare Tune folder)."""
    import yaml

    from mmkd.eval.task_metrics import primary_metric

    try:
        stored = yaml.safe_load((exp_dir / "mmkd" / "config.yaml").read_text(encoding="utf-8"))
        return names.label(primary_metric(str(stored["task"]["name"])))
    except (OSError, yaml.YAMLError, KeyError, TypeError, UserInputError):
        return names.label(names.CHRF)


_FIT_NOTE = (
    "Per student and adapter setting, chrF = a + b·x + c·x² with x = log2(teacher/student ratio) "
    "(a line with two ratios). Best ratio: the curve's maximum within the ratios tried, with the 95% "
    "interval of refits to the bootstrap replicates. All coefficients and panels in fits.csv."
)
_METHOD = (
    "- Tidy table: one row per (trial, step) from Tune's result.json; a step reported twice (a resumed "
    "trial) keeps its last report. Status from the newest experiment_state file.\n"
    "- Groups: source language; zero-shot high-resource = zero-shot languages minus the low-resource ones; "
    "low-resource. A group's value is the mean over its languages.\n"
    "- chrF intervals resample per-example sentence chrF (its mean approximates corpus chrF), shifted to the "
    "reported corpus chrF; WLR intervals resample outputs and count wrong / determined per language.\n"
    "- Spearman's ρ over every trial's final evaluation, with a 95% bootstrap interval over trials."
)


def _summary(exp_dir: Path, df: pd.DataFrame, statuses: dict[str, str], final: pd.DataFrame) -> list[str]:
    counts = pd.Series(list(statuses.values()), dtype="str").value_counts().sort_index()
    status_text = ", ".join(f"{n} {s.lower()}" for s, n in counts.items()) or "none started"
    lines = [
        f"# Sweep {exp_dir.name}",
        "",
        f"{len(statuses)} trials ({status_text}); {len(final)} with evaluations, "
        f"{int(df[OBJECTIVE].notna().sum()) if OBJECTIVE in df else 0} evaluations in all.",
        "",
    ]
    unfinished = sum(s not in FINISHED for s in statuses.values())
    if unfinished:
        lines += [
            f"**Partial sweep**: {unfinished} trials not finished; running ones count with their "
            "latest evaluation, so rerun `mmkd curves` when the sweep ends.",
            "",
        ]
    stops = df.drop_duplicates("trial_id")["stopped_by"].replace("", "(not finished)").value_counts()
    if not stops.empty:
        lines += ["Stopped by: " + ", ".join(f"{k} {v}" for k, v in stops.sort_index().items()) + ".", ""]
    errors = df.drop_duplicates("trial_id")
    errors = errors[errors["status"] == "ERROR"]
    if not errors.empty:
        lines += ["Errored trials:", ""]
        lines += [f"- `{r.trial_id}`: {r.error or '(no error file)'}" for r in errors.itertuples()] + [""]
    return lines


_BASELINE_NOTE = (
    "What a student must beat, on the same dev sets: `copy_input` answers with its input unchanged, "
    "`english_answer` with the English reference of the same item (a perfect answer in the wrong "
    "language), `teacher:<size>` is each teacher right after its finetuning."
)


def _baseline_section(baselines: pd.DataFrame | None) -> list[str]:
    if baselines is None or baselines.empty:
        return []
    view = pd.DataFrame(
        {
            "baseline": baselines["baseline"],
            "source chrF": [f"{v:.1f}" for v in baselines["source/chrf"]],
            "zero-shot chrF": [f"{v:.1f}" for v in baselines["zero_shot/chrf"]],
            "high-res chrF": [f"{v:.1f}" for v in baselines["zero_shot_high/chrf"]],
            "low-res chrF": [f"{v:.1f}" for v in baselines["low_resource/chrf"]],
            "zero-shot WLR": [f"{v:.3f}" for v in baselines["zero_shot/wlr"]],
            "low-res WLR": [f"{v:.3f}" for v in baselines["low_resource/wlr"]],
        }
    )
    return ["## Baselines", "", _BASELINE_NOTE, "", _markdown(view), ""]


def _findings(
    rho: dict[str, tuple[float, float, float]],
    fits: dict[tuple[str, str, str], CurveFit],
    final: pd.DataFrame,
) -> list[str]:
    lines = ["## Findings", ""]
    rho_all = rho["all"]
    if not math.isnan(rho_all[0]):
        direction = "more" if rho_all[0] > 0 else "less"
        lines.append(
            f"- Learning rate vs zero-shot wrong-language rate: Spearman ρ = {_ci(*rho_all, digits=2)} over "
            f"{int(final['zero_shot/wlr'].notna().sum())} trials (higher learning rates ⇒ {direction} "
            f"wrong-language output); full finetuning {_ci(*rho['full'], digits=2)}, "
            f"adapters {_ci(*rho['adapters'], digits=2)}."
        )
    controls = varied_settings(final)
    if controls:
        partial = partial_spearman(final, "lr", "zero_shot/wlr", controls)
        if not math.isnan(partial[0]):
            lines.append(
                f"- The same with {', '.join(controls)} held fixed (partial rank correlation): ρ = "
                f"{_ci(*partial, digits=2)}."
            )
    for (student, adapter, metric), fit in fits.items():
        if metric == "zero_shot/chrf":
            lines.append(
                f"- Student {student}, {adapter}: best ratio for zero-shot chrF ≈ "
                f"{_ci(fit.best_ratio, fit.best_ratio_low, fit.best_ratio_high, digits=3, general=True)} "
                f"({fit.n_points} ratios)."
            )
    lines += _adapter_finding(final)
    return [*lines, ""] if len(lines) > 2 else []


def _adapter_finding(final: pd.DataFrame) -> list[str]:
    effect = adapter_effect(final, "zero_shot/wlr")
    if math.isnan(effect[0]):
        return []
    n_lora, n_full = int((final["adapter_rank"] > 0).sum()), int((final["adapter_rank"] == 0).sum())
    return [
        f"- Adapters (LoRA) minus full finetuning, zero-shot wrong-language rate at the same learning "
        f"rate: {_ci(*effect, digits=3)} ({n_lora} LoRA and {n_full} fully finetuned trials; the "
        "adapter coefficient of WLR ~ log10(lr) + adapter, interval over trials)."
    ]


def _cell_view(best: pd.DataFrame) -> pd.DataFrame:
    def ci(column: str, digits: int) -> list[str]:
        return [
            _ci(v, lo, hi, digits=digits) for v, lo, hi in best[_with_ci([column])].itertuples(index=False)
        ]

    return pd.DataFrame(
        {
            "student": best["student"],
            "ratio": [f"{r:g}" for r in best["ratio"]],
            "adapter": best["adapter"],
            "lr": [f"{v:.2e}" for v in best["lr"]],
            "trials": best["n_trials"],
            "seeds": best["n_seeds"],
            "step": best["step"],
            "zero-shot chrF": ci("zero_shot/chrf", 1),
            "high-res chrF": ci("zero_shot_high/chrf", 1),
            "low-res chrF": ci("low_resource/chrf", 1),
            "source chrF": ci("source/chrf", 1),
            "zero-shot WLR": ci("zero_shot/wlr", 3),
            "low-res WLR": ci("low_resource/wlr", 3),
            "status": best["status"],
        }
    )


def _fit_view(fits: pd.DataFrame) -> pd.DataFrame:
    shown = fits[fits["metric"].isin(["zero_shot/chrf", "low_resource/chrf"])]
    return pd.DataFrame(
        {
            "student": shown["student"],
            "adapter": shown["adapter"],
            "chrF of": shown["metric"].str.split("/").str[0],
            "a, b, c": [
                f"{a:.2f}, {b:.2f}, {c:.2f}" for a, b, c in shown[["a", "b", "c"]].itertuples(index=False)
            ],
            "best ratio [95% CI]": [
                _ci(v, lo, hi, digits=3, general=True)
                for v, lo, hi in shown[["best_ratio", "best_ratio_lo", "best_ratio_hi"]].itertuples(
                    index=False
                )
            ],
            "ratios": shown["n_points"],
        }
    )


def _ci(value: float, low: float, high: float, *, digits: int, general: bool = False) -> str:
    if math.isnan(value):
        return "–"
    spec = f".{digits}{'g' if general else 'f'}"
    if math.isnan(low) or low == high == value:
        return format(value, spec)
    return f"{value:{spec}} [{low:{spec}}, {high:{spec}}]"


def _markdown(df: pd.DataFrame) -> str:
    if df.empty:
        return "(none: too few cells)"
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def _write_report(out: Path, lines: list[str]) -> Path:
    report = out / REPORT
    report.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return report
