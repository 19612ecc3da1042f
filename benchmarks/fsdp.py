"""What sharding a trial's student costs: the same 2-worker trial under ddp and under fsdp (CPU, gloo).

    python benchmarks/fsdp.py [--student l] [--teacher xl] [--steps 32] [--n-dev 16] [--max-new-tokens 16]

Each trial runs the recipe on two ``torchrun`` ranks, as Ray Train's workers run it
(tests/sharded_worker.py, without Ray's start-up): full finetuning of an untrained tiny student from an
untrained tiny teacher, every MMKD level on, evaluating four times. Reported per strategy: the mean
seconds of a training step and of an evaluation (greedy generation on every dev set, scored; under fsdp
every rank generates in lockstep, gathering each block for each forward) from rank 0's reports, and the
share of the student's parameter elements rank 0 holds. Prints one JSON line last, with the fsdp/ddp
ratios (measured in one run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from transformers import ByT5Tokenizer, T5ForConditionalGeneration

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "sharded_worker.py"


def trial(root: Path, models: Path, strategy: str, args: argparse.Namespace) -> dict[str, float]:
    out = root / strategy
    overrides = ["task.n_train=64", f"task.n_dev={args.n_dev}", "task.languages=[sw, te]",
                 f"search.teacher=[{args.teacher}]", f"search.student=[{args.student}]",
                 f"train.max_steps={args.steps}", f"train.eval_every={max(1, args.steps // 4)}",
                 "train.batch_size=8", "train.warmup_steps=1", "train.checkpoint_every_s=1e9",
                 f"eval.max_new_tokens={args.max_new_tokens}", "distill.cache=false", "distill.parallel=true",
                 "stop.wlr=null"]  # fmt: skip
    spec = root / f"{strategy}.json"
    spec.write_text(json.dumps({"out": str(out), "models": str(models), "strategy": strategy,
                                "overrides": overrides, "teacher": args.teacher, "student": args.student,
                                "adapter_rank": 0}))  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run([*command, str(WORKER), str(spec)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"fsdp.py: the {strategy} trial failed:\n{done.stderr[-3000:]}")
    from mmkd import reporting

    sent = [json.loads(line) for line in (out / "result.jsonl").read_text().splitlines()]
    reports = [{**r, **reporting.read_set_aside(out, r["step"])} for r in sent]  # the timings are set aside
    rank0 = json.loads((out / "rank0.json").read_text())
    return {
        "train_step_s": sum(r["time/train_step_s"] for r in reports) / len(reports),
        "eval_s": sum(r["time/eval_s"] for r in reports) / len(reports),
        "rank0_share": rank0["held"] / rank0["total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--student", default="l", help="tiny student size (default l)")
    parser.add_argument("--teacher", default="xl", help="tiny teacher size (default xl)")
    parser.add_argument("--steps", type=int, default=32, help="training steps, evaluated every quarter")
    parser.add_argument("--n-dev", type=int, default=16, help="dev examples per language")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    from mmkd.models.zoo import tiny_config

    with tempfile.TemporaryDirectory() as tmp:
        root, models = Path(tmp), Path(tmp) / "models"
        torch.manual_seed(0)
        for size in (args.teacher, args.student):
            T5ForConditionalGeneration(tiny_config(size)).save_pretrained(models / size)
            ByT5Tokenizer().save_pretrained(models / size)
        result = {s: trial(root, models, s, args) for s in ("ddp", "fsdp")}
    ddp, fsdp = result["ddp"], result["fsdp"]
    print(json.dumps({
        "student": args.student, "teacher": args.teacher, "workers": 2, **{
            f"{s}_{k}": round(v, 4) for s, r in result.items() for k, v in r.items()
        },
        "fsdp_over_ddp_train_step": round(fsdp["train_step_s"] / ddp["train_step_s"], 3),
        "fsdp_over_ddp_eval": round(fsdp["eval_s"] / ddp["eval_s"], 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
