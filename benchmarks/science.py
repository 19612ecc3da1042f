"""Does the quickstart measure something? Its trials against the trivial baselines, and the effects of
learning rate and adapters on the wrong-language rate (issue: the embedded default must measure).

    python benchmarks/science.py [--storage DIR] [--set KEY=VALUE ...]   # runs the quickstart cold
    python benchmarks/science.py --reuse runs/quickstart                 # reads a finished sweep

A cold run starts from an empty model cache, so ``cold_s`` includes pretraining the tiny family and
finetuning the teacher. Figures (each trial at its final evaluation, as `mmkd curves` reports them):
the zero-shot chrF of the baselines (copy the input, answer with the English reference, each teacher)
and of the best trial; the shares of trials with zero-shot WLR <= 0.5 and >= 0.8; Spearman's rho of
learning rate and zero-shot WLR with its 95% bootstrap interval over trials; LoRA minus full finetuning
in zero-shot WLR at the same learning rate, with its interval; the partial rank correlation of learning
rate and WLR with the other varied settings (student, adapter, auxiliary translation) held fixed.
Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import run_quickstart

from mmkd.curves.aggregate import load_results
from mmkd.curves.fit import adapter_effect, final_rows, partial_spearman, spearman_ci, varied_settings
from mmkd.eval.baselines import read_baselines


def figures(exp: Path) -> dict[str, object]:
    final = final_rows(load_results(exp))
    baselines = read_baselines(exp / "mmkd")
    if baselines is None:
        raise SystemExit(f"{exp}: no mmkd/baselines.csv (a sweep of an older mmkd?)")
    zero_shot = dict(zip(baselines["baseline"], baselines["eval/zero_shot/chrf"], strict=True))
    exact = dict(zip(baselines["baseline"], baselines["eval/zero_shot/exact"], strict=True))
    wlr = final["zero_shot/wlr"]
    rho, rho_low, rho_high = spearman_ci(final["lr"].tolist(), wlr.tolist())
    effect, effect_low, effect_high = adapter_effect(final, "zero_shot/wlr")
    controls = varied_settings(final)
    partial, partial_low, partial_high = partial_spearman(final, "lr", "zero_shot/wlr", controls)
    best = final.sort_values("eval/score", ascending=False).iloc[0]
    return {
        "trials": len(final),
        "copy_input_zero_shot_chrf": zero_shot.get("copy_input"),
        "english_answer_zero_shot_chrf": zero_shot.get("english_answer"),
        "teacher_zero_shot_chrf": {
            k.split(":", 1)[1]: v for k, v in zero_shot.items() if k.startswith("teacher:")
        },
        "best_zero_shot_chrf": float(best["eval/score"]),
        "best_trial": {
            k: _plain(best[k])
            for k in ("student", "lr", "adapter_rank", "aux_translation", "zero_shot/wlr", "eval/source/chrf")
        },
        # Exact answers (in percent): chrF credits an output for letters it shares with the answer, so
        # copying the input scores high chrF but no exact answer.
        "exact_zero_shot": {**exact, "best_trial": float(best["eval/zero_shot/exact"])},
        "wlr_low_share": float((wlr <= 0.5).mean()),
        "wlr_high_share": float((wlr >= 0.8).mean()),
        "zero_shot_wlr": sorted(round(float(v), 3) for v in wlr),
        "spearman_lr_wlr": rho,
        "spearman_ci": [rho_low, rho_high],
        "partial_spearman_lr_wlr": partial,
        "partial_spearman_ci": [partial_low, partial_high],
        "partial_spearman_controls": controls,
        "lora_minus_full_wlr": effect,
        "lora_minus_full_ci": [effect_low, effect_high],
    }


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--storage", type=Path, default=None, help="where the cold run goes (default: a temp dir)"
    )
    ap.add_argument("--reuse", type=Path, default=None, help="a finished quickstart experiment to read")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE for the run")
    args = ap.parse_args()
    out: dict[str, object] = {"cold_s": None}
    exp = args.reuse
    if exp is None:
        root = args.storage or Path(tempfile.mkdtemp(prefix="mmkd-science-"))
        out["cold_s"] = run_quickstart("science", root / "runs", args.overrides, cache=root / "cache")
        exp = root / "runs" / "science"
    out.update(figures(exp))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
