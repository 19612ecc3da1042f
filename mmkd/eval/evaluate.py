"""One evaluation: outputs and references per language → the metric contract and per-example rows.

Keys (spelled in mmkd/names.py; docs/DESIGN.md, "Metrics a trial reports"), for every language L evaluated:
``eval/L/chrf``, ``eval/L/wlr``, ``eval/L/src_rate``, ``eval/L/undetermined`` (share of outputs) and
``eval/L/lid_ref_acc`` (LID accuracy on L's references); group means ``eval/zero_shot/{chrf,wlr}``
(every language but the source) and ``eval/low_resource/{chrf,wlr}`` (the low-resource languages
present); ``eval/source/chrf``.

A task's own metric (``mmkd.eval.task_metrics.TaskMetric``, named by the task's ``metric``) adds its keys:
``eval/L/f1`` and ``eval/L/em`` for QA, ``eval/L/f1`` (entity F1) for NER, with the means
``eval/{source,zero_shot,low_resource}/<key>`` (``mmkd.reporting.group_means``). ``eval/score``, the
sweep objective, is the zero-shot mean of the task's primary metric: ``eval/zero_shot/f1`` for QA and
NER, ``eval/zero_shot/chrf`` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mmkd import names
from mmkd.data.base import Example, Task
from mmkd.eval.langid import TAU, LangID, WLRStats, reference_accuracy, verdicts
from mmkd.eval.metrics import chrf, chrf_per_example
from mmkd.eval.task_metrics import Reference, get_task_metric
from mmkd.reporting import group_means

# Below this LID accuracy on its own references a language's WLR says more about the detector than about
# the model; such languages are listed in `unreliable_langs` (and flagged in reports).
RELIABLE_LID = 0.8


@dataclass
class Evaluation:
    """``metrics``: the contract keys above. ``examples``: one row per output with keys ``lang``, ``id``,
    ``chrf``, ``verdict``, ``label``, ``output`` and the task metric's per-example values (``f1``, ``em``
    for QA; ``f1``, ``hits``, ``n_pred``, ``n_gold`` for NER); the curves bootstrap over them.
    ``unreliable_langs``: languages whose ``lid_ref_acc`` is below ``RELIABLE_LID``, in evaluation order."""

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
    tau: float = TAU,
    metric: str = "chrf",
    golds: Mapping[str, Sequence[Reference]] | None = None,
    low_name: str = names.LOW_RESOURCE,
) -> Evaluation:
    """Score every language in ``outputs`` against ``references`` (same keys, same lengths as ``ids``).

    ``metric`` names the task metric; ``golds`` are what it scores against when an example has several
    acceptable references (QA's gold answers; default: ``references``). chrF and LID use ``references``.
    ``low_name`` is the low-resource group's name in the keys (the task's ``low_resource_name``).
    """
    task_metric = get_task_metric(metric)
    golds = references if golds is None else golds
    _check_lengths(outputs, {"references": references, "ids": ids, "golds": golds})
    metrics: dict[str, float] = {}
    examples: list[dict[str, Any]] = []
    unreliable = []
    for lang, outs in outputs.items():
        refs = references[lang]
        judged = verdicts(outs, lang, langid, tau)
        stats = WLRStats.from_verdicts(judged, source_lang)
        ref_acc = _reference_accuracy(langid, tuple(refs), lang, tau)
        metrics[names.key(lang, names.CHRF)] = chrf(outs, refs)
        metrics[names.key(lang, names.WLR)] = stats.wlr
        metrics[names.key(lang, names.SRC_RATE)] = stats.src_rate
        metrics[names.key(lang, names.UNDETERMINED)] = stats.undetermined / stats.n
        metrics[names.key(lang, names.LID_REF_ACC)] = ref_acc
        if ref_acc < RELIABLE_LID:
            unreliable.append(lang)
        if task_metric.corpus is not None:
            for key, value in task_metric.corpus(outs, golds[lang], lang).items():
                metrics[names.key(lang, key)] = value
        for ex_id, out, gold, score, (verdict, label) in zip(
            ids[lang], outs, golds[lang], chrf_per_example(outs, refs), judged, strict=True
        ):
            row = {"lang": lang, "id": ex_id, "chrf": score, "verdict": verdict, "label": label}
            row["output"] = out
            if task_metric.example is not None:
                row |= task_metric.example(out, gold, lang)
            examples.append(row)
    metrics |= group_means(
        metrics,
        list(outputs),
        source_lang=source_lang,
        low_resource=low_resource,
        low_name=low_name,
        task_keys=task_metric.keys,
        primary=task_metric.primary,
    )
    return Evaluation(metrics, examples, unreliable)


def _check_lengths(
    outputs: Mapping[str, Sequence[str]], given: Mapping[str, Mapping[str, Sequence[Any]]]
) -> None:
    for lang, outs in outputs.items():
        if not outs:
            raise ValueError(f"{lang}: no outputs to evaluate")
        for what, per_lang in given.items():
            if lang not in per_lang or len(per_lang[lang]) != len(outs):
                got = len(per_lang[lang]) if lang in per_lang else "none"
                raise ValueError(f"{lang}: {len(outs)} outputs but {got} {what}")


def evaluate_model(
    model: Any,
    tokenizer: Any,
    task: Task,
    dev: Mapping[str, Sequence[Example]],
    sweep: Any,
    langid: LangID,
    synced_gpus: bool = False,
) -> Evaluation:
    """Greedy outputs of ``model`` on every language's ``dev`` examples, scored: what a trial reports at
    each evaluation and what a teacher's baseline row holds. ``sweep`` is the ``SweepConfig``;
    ``synced_gpus``: a sharded model that every rank runs in lockstep (``generate``)."""
    from mmkd.eval.generate import generate

    outputs = {}
    for lang, examples in dev.items():
        # An answer a quarter longer than the longest reference is wrong anyway: stop generating there
        # (a degenerate student would otherwise run every output to max_new_tokens).
        longest = max(len(tokenizer(e.target)["input_ids"]) for e in examples)
        outputs[lang] = generate(
            model,
            tokenizer,
            [e.source for e in examples],
            batch_size=sweep.eval.batch_size,
            max_new_tokens=min(sweep.eval.max_new_tokens, longest + longest // 4 + 4),
            max_source_len=sweep.train.max_source_len,
            langs=[lang] * len(examples),
            family=sweep.family.name,  # told the output language the family's way (forced token or tag)
            no_repeat_ngram=sweep.eval.no_repeat_ngram,
            synced_gpus=synced_gpus,
        )
    return score_outputs(outputs, task, dev, langid, sweep.eval.tau)


def score_outputs(
    outputs: Mapping[str, Sequence[str]],
    task: Task,
    dev: Mapping[str, Sequence[Example]],
    langid: LangID,
    tau: float,
) -> Evaluation:
    """``evaluate_outputs`` for outputs given per language in the order of ``dev``'s examples."""
    return evaluate_outputs(
        outputs,
        {lang: [e.target for e in dev[lang]] for lang in outputs},
        {lang: [e.id for e in dev[lang]] for lang in outputs},
        source_lang=task.source_lang,
        low_resource=task.low_resource,
        langid=langid,
        tau=tau,
        metric=task.metric,
        golds={lang: [e.references for e in dev[lang]] for lang in outputs},
        low_name=task.low_resource_name,
    )


@lru_cache(maxsize=256)
def _reference_accuracy(langid: LangID, refs: tuple[str, ...], lang: str, tau: float) -> float:
    # References never change during a trial: identify them once per (backend, references, tau), not at
    # every evaluation. Keyed by content, so a new reference set can never be served a stale answer.
    return reference_accuracy(refs, lang, langid, tau)
