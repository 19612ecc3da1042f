"""Language-ID throughput through the wrong-language-rate path that every evaluation takes.

    python benchmarks/lid.py [--outputs 20000] [--backend fasttext]

Takes the built-in task's dev and test targets in all its languages (real outputs of the kind a trial
scores: a few words to a short sentence, 19 scripts), cycles them to ``--outputs`` texts, and times
``WLRStats.from_verdicts(verdicts(...))`` per language on them (letter count, lid.176 prediction,
verdicts, counts), as every evaluation does,
after one warm-up call that loads the model. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--outputs", type=int, default=20_000)
    ap.add_argument("--backend", default="fasttext")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mmkd.data import get_task
    from mmkd.eval.langid import WLRStats, get_langid, verdicts

    task = get_task("builtin/cldr")
    langs = list(task.languages)
    per_lang = args.outputs // len(langs)
    texts = {
        lang: list(
            itertools.islice(
                itertools.cycle([e.target for split in ("dev", "test") for e in task.examples(split, lang)]),
                per_lang,
            )
        )
        for lang in langs
    }
    langid = get_langid(args.backend)
    verdicts(texts[langs[0]][:10], langs[0], langid)  # loads the model
    started = time.perf_counter()
    wrong = 0
    for lang, outs in texts.items():
        wrong += WLRStats.from_verdicts(verdicts(outs, lang, langid), task.source_lang).wrong
    seconds = time.perf_counter() - started
    n = per_lang * len(langs)
    print(
        json.dumps(
            {
                "backend": args.backend,
                "outputs": n,
                "languages": len(langs),
                "mean_chars": sum(len(t) for ts in texts.values() for t in ts) / n,
                "seconds": seconds,
                "lid_outputs_per_s": n / seconds,
                "wrong_share_on_references": wrong / n,
            }
        )
    )


if __name__ == "__main__":
    main()
