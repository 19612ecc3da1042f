"""Cost of distillation per training step: plain student vs teacher recomputed vs teacher cached.

    python benchmarks/distill_step.py [--steps 30] [--levels all|token]

For the tiny family at ratio ≈ 8 (l → s) and ≈ 40 (l → xs), times one optimiser step of the trial's own
``loss_step`` on CPU (one thread, like a Tune trial with cpu: 1): task loss only, MMKD with the teacher
run on every batch, and MMKD with the teacher's outputs read from the cache. Models are randomly
initialised (time does not depend on the weights). Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import ByT5Tokenizer, T5ForConditionalGeneration

from mmkd.config import load
from mmkd.data import get_task
from mmkd.data.collate import batch_indices, encode_batch, token_spans
from mmkd.distill.cache import CachedTeacher, LiveTeacher, build_sharded, cache_settings
from mmkd.distill.losses import MMKDHeads
from mmkd.models.zoo import tiny_config
from mmkd.trial import ENCODER_LEVELS, _student_view, loss_step


def time_steps(student, heads, distill, teacher, train, parallel, tok, cfg, steps: int) -> float:
    params = list(student.parameters()) + (list(heads.parameters()) if heads is not None else [])
    opt = torch.optim.AdamW(params, lr=1e-3)
    times = []
    for step in range(steps + 3):
        start = time.perf_counter()
        idx = batch_indices(len(train), step, cfg.batch_size, 0)
        examples = [train[i] for i in idx]
        batch = encode_batch(tok, examples, cfg.max_source_len, cfg.max_target_len)
        spans = token_spans(tok, examples, cfg.max_source_len)
        encoder_levels = any(getattr(distill, lvl) > 0 for lvl in ENCODER_LEVELS)
        view = _student_view(tok, examples, parallel, distill, cfg, step, 0) if encoder_levels else None
        outputs = teacher.outputs(idx, batch, spans) if teacher is not None else None
        total, _ = (
            loss_step(student, heads, batch, spans, outputs, distill, view)
            if outputs is not None
            else (student(**batch).loss, {})
        )
        total.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= 3:  # warm-up steps excluded
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--levels", choices=["all", "token"], default="all")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    overrides = (
        [] if args.levels == "all" else ["distill.word=0", "distill.sentence=0", "distill.structure=0"]
    )
    sweep = load("quickstart", overrides)
    cfg, distill = sweep.train, sweep.distill
    task = get_task(sweep.task.name, **sweep.task_options())
    train = task.examples("train", "en")
    parallel = {lang: {e.id: e for e in task.examples("train", lang)} for lang in task.languages[1:]}
    tok = ByT5Tokenizer()
    teacher_model = T5ForConditionalGeneration(tiny_config("l")).eval()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        load_teacher = lambda: (teacher_model, tok)  # noqa: E731
        cache = build_sharded(load_teacher, train, Path(tmp) / "cache.safetensors", 1, cache_settings(sweep))
        cached = CachedTeacher(cache)
        for student_size in ("s", "xs"):
            student = T5ForConditionalGeneration(tiny_config(student_size))
            heads = MMKDHeads(student.config.d_model, teacher_model.config.d_model)
            plain = time_steps(student, None, distill, None, train, parallel, tok, cfg, args.steps)
            live = time_steps(
                student,
                heads,
                distill,
                LiveTeacher(teacher_model, distill.top_k),
                train,
                parallel,
                tok,
                cfg,
                args.steps,
            )
            from_cache = time_steps(student, heads, distill, cached, train, parallel, tok, cfg, args.steps)
            ratio = sum(p.numel() for p in teacher_model.parameters()) / sum(
                p.numel() for p in student.parameters()
            )
            results[f"ratio_{ratio:.0f}"] = {
                "student": student_size,
                "plain_s": plain,
                "recomputed_s": live,
                "cached_s": from_cache,
                "cached_over_plain": from_cache / plain,
                "recomputed_over_plain": live / plain,
            }
            print(json.dumps(results[f"ratio_{ratio:.0f}"]), flush=True)
        size_mb = cached.path.stat().st_size / 2**20
    worst = max(results.values(), key=lambda r: r["cached_over_plain"])
    print(
        json.dumps(
            {
                "levels": args.levels,
                **{
                    k: worst[k]
                    for k in (
                        "plain_s",
                        "recomputed_s",
                        "cached_s",
                        "cached_over_plain",
                        "recomputed_over_plain",
                    )
                },
                "cache_mb_per_1000_examples": size_mb / len(train) * 1000,
                "by_ratio": results,
            }
        )
    )


if __name__ == "__main__":
    main()
