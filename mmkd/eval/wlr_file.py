"""``mmkd wlr FILE.jsonl``: the wrong-language rate of any system's outputs.

Each line is a JSON object with ``output`` and ``lang`` (the expected language), optionally
``reference``. Blank lines are skipped; any other malformed line is an error naming its number.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mmkd.errors import UserInputError
from mmkd.eval.langid import LangID, WLRStats, reference_accuracy, verdicts


def read_jsonl(path: Path) -> list[dict[str, str]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserInputError(f"{path}:{number}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise UserInputError(f"{path}:{number}: expected a JSON object with 'output' and 'lang'")
            for key in ("output", "lang") + (("reference",) if "reference" in row else ()):
                if not isinstance(row.get(key), str):
                    raise UserInputError(f"{path}:{number}: {key!r} must be a string (got {row.get(key)!r})")
            rows.append(row)
    return rows


def score_jsonl(
    path: Path, *, langid: LangID, tau: float = 0.3, source_lang: str = "en"
) -> dict[str, tuple[WLRStats, float | None]]:
    """Per language: the WLR statistics and, when references were given, the LID accuracy on them."""
    by_lang: dict[str, list[dict[str, str]]] = {}
    for row in read_jsonl(path):
        by_lang.setdefault(row["lang"], []).append(row)
    result = {}
    for lang in sorted(by_lang):
        rows = by_lang[lang]
        stats = WLRStats.from_verdicts(verdicts([r["output"] for r in rows], lang, langid, tau), source_lang)
        refs = [r["reference"] for r in rows if "reference" in r]
        result[lang] = (stats, reference_accuracy(refs, lang, langid, tau) if refs else None)
    return result


def format_table(scores: dict[str, tuple[WLRStats, float | None]]) -> str:
    with_refs = any(acc is not None for _, acc in scores.values())
    head = f"{'lang':<6}{'n':>6}{'determined':>12}{'undetermined':>14}{'wrong':>7}{'wlr':>8}{'src_rate':>10}"
    lines = [head + (f"{'lid_ref_acc':>13}" if with_refs else "")]
    for lang, (s, acc) in scores.items():
        line = (
            f"{lang:<6}{s.n:>6}{s.determined:>12}{s.undetermined:>14}{s.wrong:>7}"
            f"{s.wlr:>8.3f}{s.src_rate:>10.3f}"
        )
        if with_refs:
            line += f"{acc:>13.3f}" if acc is not None else f"{'-':>13}"
        lines.append(line)
    return "\n".join(lines)


def to_json(scores: dict[str, tuple[WLRStats, float | None]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lang, (s, acc) in scores.items():
        block: dict[str, Any] = asdict(s)
        for key in ("wlr", "src_rate"):  # JSON has no NaN: nothing determined is null
            if block[key] != block[key]:
                block[key] = None
        if acc is not None:
            block["lid_ref_acc"] = acc
        out[lang] = block
    return out
