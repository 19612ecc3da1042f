"""Task quality: sacrebleu chrF, corpus-level and per example."""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import CHRF

_CHRF = CHRF()


def chrf(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Corpus chrF (0–100)."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    return float(_CHRF.corpus_score(list(hyps), [list(refs)]).score)


def chrf_per_example(hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    return [float(_CHRF.sentence_score(h, [r]).score) for h, r in zip(hyps, refs, strict=True)]
