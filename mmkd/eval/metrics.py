"""Task quality: sacrebleu chrF (default settings: chrF2, character 6-grams), corpus-level and per example."""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import CHRF

# One instance for the process: CHRF keeps no state between calls, and building it is not free.
_CHRF = CHRF()


def _check(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    if not hyps:
        raise ValueError("chrF of an empty corpus is undefined")


def chrf(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Corpus chrF (0–100) of hypotheses against one reference each."""
    _check(hyps, refs)
    return float(_CHRF.corpus_score(list(hyps), [list(refs)]).score)


def chrf_per_example(hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
    """Sentence chrF (0–100) per hypothesis: the unit the curves bootstrap over."""
    _check(hyps, refs)
    return [float(_CHRF.sentence_score(h, [r]).score) for h, r in zip(hyps, refs, strict=True)]
