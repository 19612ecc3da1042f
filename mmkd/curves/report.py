"""``mmkd curves``: a sweep → tidy tables, best-per-cell table, fitted curves, PNG plots, report.md.

Works on finished, partial and running sweeps (it reads whatever evaluations exist) and never imports
Ray. Same input, same bytes: tables are sorted and rounded, bootstraps seeded, plots without timestamps.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from mmkd.curves import plot
from mmkd.curves.aggregate import load_results, write_tables
from mmkd.curves.fit import GROUPS, best_per_cell, example_cis, final_rows, fit_curve, languages

EXAMPLES_FILE = "mmkd_examples.jsonl"
BEST_COLUMNS = [
    "student",
    "student_params",
    "teacher",
    "ratio",
    "adapter",
    "n_trials",
    "lr",
    "trial_id",
    "step",
    "source/chrf",
    "zero_shot_high/chrf",
    "low_resource/chrf",
    "eval/score",
    "chrf_ci_low",
    "chrf_ci_high",
    "eval/zero_shot/wlr",
    "wlr_ci_low",
    "wlr_ci_high",
    "eval/low_resource/wlr",
    "stopped_by",
]


def latest_examples(exp_dir: Path, trial_dir: str) -> pd.DataFrame:
    """Per-example rows of a trial's newest checkpoint (its latest evaluation)."""
    files = sorted((exp_dir / trial_dir).glob(f"checkpoint_*/{EXAMPLES_FILE}"))
    if not files:
        return pd.DataFrame(columns=["lang", "chrf", "verdict"])
    return pd.read_json(files[-1], lines=True)


def build_curves(exp_dir: Path, out_dir: Path | None = None) -> Path:
    out = out_dir or exp_dir / "mmkd" / "curves"
    out.mkdir(parents=True, exist_ok=True)
    df = load_results(exp_dir)
    write_tables(df, out)
    final = final_rows(df)
    if final.empty:
        report = out / "report.md"
        report.write_text(
            f"# Sweep {exp_dir.name}\n\nNo evaluations yet ({df['trial_id'].nunique()} trials).\n"
        )
        return report
    best = best_per_cell(final)
    langs = languages(df)
    cis = []
    for row in best.itertuples():
        source = str(getattr(row, "source_lang", "en"))
        cis.append(
            example_cis(latest_examples(exp_dir, str(row.trial_dir)), [x for x in langs if x != source])
        )
    best = pd.concat([best, pd.DataFrame(cis, index=best.index)], axis=1)
    fits = {}
    for student, cell in best.groupby("student", sort=True):
        fit = fit_curve(str(student), cell["ratio"].tolist(), cell["zero_shot_high/chrf"].tolist())
        if fit is not None:
            fits[str(student)] = fit
    table = best[[c for c in BEST_COLUMNS if c in best]]
    table.to_csv(out / "best_per_cell.csv", index=False, float_format="%.6g")
    fit_table = pd.DataFrame(
        [
            {
                "student": f.student,
                "best_ratio": f.best_ratio,
                "ci_low": f.best_ratio_low,
                "ci_high": f.best_ratio_high,
                "points": f.n_points,
                "coef": json.dumps([round(c, 6) for c in f.coef]),
            }
            for f in fits.values()
        ]
    )
    fit_table.to_csv(out / "fits.csv", index=False, float_format="%.6g")

    pngs = {
        "score vs ratio": plot.versus_ratio(best, "chrf", fits, out / "score_vs_ratio.png"),
        "wrong-language rate vs ratio": plot.versus_ratio(best, "wlr", {}, out / "wlr_vs_ratio.png"),
    }
    pngs["learning rate vs wrong-language rate"], rho = plot.lr_vs_wlr(final, out / "lr_vs_wlr.png")
    pngs["chrF per language"] = plot.heatmap(best, langs, "chrf", out / "heatmap_chrf.png")
    pngs["wrong-language rate per language"] = plot.heatmap(best, langs, "wlr", out / "heatmap_wlr.png")

    statuses = df.drop_duplicates("trial_id")["status"].value_counts().sort_index()
    lines = [
        f"# Sweep {exp_dir.name}",
        "",
        f"{df['trial_id'].nunique()} trials ({', '.join(f'{k.lower()} {v}' for k, v in statuses.items())}), "
        f"{len(df)} evaluations. Groups: {', '.join(plot.TITLES[g] for g in GROUPS)}.",
        "",
        f"Learning rate vs zero-shot wrong-language rate: Spearman ρ = {_fmt(rho)} over {len(final)} trials.",
        "",
        "## Best trial per cell (student × ratio × adapter, best over the learning rate, final evaluation)",
        "",
        "chrF and WLR intervals: 95% bootstrap over the zero-shot evaluation examples of that trial.",
        "",
        _markdown(table),
        "",
        "## Fitted curves (zero-shot high-resource chrF = a + b·log2 r + c·log2² r)",
        "",
        _markdown(fit_table) if not fit_table.empty else "Too few distinct ratios per student to fit.",
        "",
    ]
    for title, png in pngs.items():
        lines += [f"## {title[0].upper() + title[1:]}", "", f"![{title}]({png.name})", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])
