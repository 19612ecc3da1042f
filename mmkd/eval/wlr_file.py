"""``mmkd wlr FILE.jsonl [--json]``: the wrong-language rate of any system's outputs.

Each line is a JSON object with ``output`` and ``lang`` (the expected language, any code that
``normalize_lang`` knows: ``deu`` and ``de-AT`` count as ``de``), optionally ``reference``. Blank lines
are skipped; any other malformed line is an error naming the file and the line number.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mmkd.errors import UserInputError
from mmkd.eval.langid import (
    TAU,
    LangID,
    WLRStats,
    check_thresholds,
    normalize_lang,
    reference_accuracy,
    verdicts,
)


def read_jsonl(path: Path) -> list[dict[str, str]]:
    """The rows of ``path``, each a JSON object with string ``output``, ``lang`` [, ``reference``]."""
    rows = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserInputError(f"{where}: not UTF-8 ({e.reason} at byte {e.start})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserInputError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise UserInputError(f"{where}: expected a JSON object with 'output' and 'lang'")
            for key in ("output", "lang") + (("reference",) if "reference" in row else ()):
                if not isinstance(row.get(key), str):
                    raise UserInputError(f"{where}: {key!r} must be a string (got {row.get(key)!r})")
            if not row["lang"].strip():
                raise UserInputError(f"{where}: 'lang' must name a language (got {row['lang']!r})")
            rows.append(row)
    return rows


def score_jsonl(
    path: Path, *, langid: LangID, tau: float = TAU, source_lang: str = "en"
) -> dict[str, WLRStats]:
    """Per expected language (normalised, sorted): the WLR statistics of its outputs, with
    ``lid_ref_acc`` set when any of its rows carries a reference (computed over those references)."""
    check_thresholds(tau, 0)
    by_lang: dict[str, list[dict[str, str]]] = {}
    for row in read_jsonl(path):
        by_lang.setdefault(normalize_lang(row["lang"]), []).append(row)
    result = {}
    for lang in sorted(by_lang):
        rows = by_lang[lang]
        refs = [r["reference"] for r in rows if "reference" in r]
        result[lang] = WLRStats.from_verdicts(
            verdicts([r["output"] for r in rows], lang, langid, tau),
            source_lang,
            lid_ref_acc=reference_accuracy(refs, lang, langid, tau) if refs else None,
        )
    return result


def _cell(value: float | None, width: int) -> str:
    # NaN (nothing determined) and None (no references) both read as "-": there is no number to show.
    if value is None or math.isnan(value):
        return f"{'-':>{width}}"
    return f"{value:>{width}.3f}"


def format_table(stats: dict[str, WLRStats]) -> str:
    """A fixed-width table, one row per language; a ``lid_ref_acc`` column when references were given."""
    with_refs = any(s.lid_ref_acc is not None for s in stats.values())
    w = max([4, *map(len, stats)]) + 2
    head = (
        f"{'lang':<{w}}{'n':>6}{'determined':>12}{'undetermined':>14}{'wrong':>7}{'wlr':>8}{'src_rate':>10}"
    )
    lines = [head + (f"{'lid_ref_acc':>13}" if with_refs else "")]
    for lang, s in stats.items():
        line = (
            f"{lang:<{w}}{s.n:>6}{s.determined:>12}{s.undetermined:>14}{s.wrong:>7}"
            f"{_cell(s.wlr, 8)}{_cell(s.src_rate, 10)}"
        )
        if with_refs:
            line += _cell(s.lid_ref_acc, 13)
        lines.append(line)
    return "\n".join(lines)


def to_json(stats: dict[str, WLRStats]) -> dict[str, Any]:
    """``{lang: {n, determined, undetermined, wrong, in_source, wlr, src_rate, lid_ref_acc}}``; counts are
    integers, ``undetermined`` is the count, and a rate with nothing to measure is ``null`` (JSON has
    no NaN)."""
    out: dict[str, Any] = {}
    for lang, s in stats.items():
        block: dict[str, Any] = asdict(s)
        for key in ("wlr", "src_rate"):
            if math.isnan(block[key]):
                block[key] = None
        out[lang] = block
    return out
