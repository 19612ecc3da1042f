"""One evaluation: outputs and references per language → the metric contract and per-example rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mmkd.eval.langid import LangID, WLRStats, get_langid, reference_accuracy, verdicts
from mmkd.eval.metrics import chrf, chrf_per_example

# Below this LID accuracy on its own references a language's WLR says more about the detector than about
# the model; such languages are listed in `unreliable_langs` (and flagged in reports).
RELIABLE_LID = 0.8


@dataclass
class Evaluation:
    metrics: dict[str, float]
    examples: list[dict[str, Any]]
    unreliable_langs: list[str] = field(default_factory=list)


def evaluate_outputs(
    outputs: Mapping[str, Sequence[str]],
    references: Mapping[str, Sequence[str]],
    ids: Mapping[str, Sequence[str]],
    *,
    source_lang: str,
    low_resource: Sequence[str],
    langid: LangID,
    tau: float = 0.3,
) -> Evaluation:
    metrics: dict[str, float] = {}
    examples: list[dict[str, Any]] = []
    unreliable = []
    for lang, outs in outputs.items():
        refs = references[lang]
        judged = verdicts(outs, lang, langid, tau)
        stats = WLRStats.from_verdicts(judged, source_lang)
        ref_acc = _reference_accuracy(tuple(refs), lang, langid.name, tau)
        metrics[f"eval/{lang}/chrf"] = chrf(outs, refs)
        metrics[f"eval/{lang}/wlr"] = stats.wlr
        metrics[f"eval/{lang}/src_rate"] = stats.src_rate
        metrics[f"eval/{lang}/undetermined"] = stats.undetermined / stats.n if stats.n else math.nan
        metrics[f"eval/{lang}/lid_ref_acc"] = ref_acc
        if ref_acc < RELIABLE_LID:
            unreliable.append(lang)
        for ex_id, out, score, (verdict, label) in zip(
            ids[lang], outs, chrf_per_example(outs, refs), judged, strict=True
        ):
            examples.append(
                {"lang": lang, "id": ex_id, "chrf": score, "verdict": verdict, "label": label, "output": out}
            )
    zero_shot = [lang for lang in outputs if lang != source_lang]
    low = [lang for lang in zero_shot if lang in set(low_resource)]
    for group, langs in (("zero_shot", zero_shot), ("low_resource", low)):
        metrics[f"eval/{group}/chrf"] = _mean([metrics[f"eval/{lang}/chrf"] for lang in langs])
        metrics[f"eval/{group}/wlr"] = _mean([metrics[f"eval/{lang}/wlr"] for lang in langs])
    if source_lang in outputs:
        metrics["eval/source/chrf"] = metrics[f"eval/{source_lang}/chrf"]
    metrics["eval/score"] = metrics["eval/zero_shot/chrf"]
    return Evaluation(metrics, examples, unreliable)


def _mean(values: Sequence[float]) -> float:
    """Mean that skips NaN (a language with no determined output has no WLR); NaN if nothing is left."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


@lru_cache(maxsize=256)
def _reference_accuracy(refs: tuple[str, ...], lang: str, backend: str, tau: float) -> float:
    # References never change during a trial: identify them once per (references, backend).
    return reference_accuracy(refs, lang, get_langid(backend), tau)
