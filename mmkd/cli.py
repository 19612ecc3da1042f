"""The ``mmkd`` command line: ``main`` parses the arguments and calls one function per subcommand.

A subcommand is a function ``(args) -> exit code`` registered with ``@command``, which holds everything
``--help`` shows for it: the words that call it, a one-line summary, what it does and its arguments
(shared ones are the constants below). ``_parser`` builds argparse from the registrations, so adding a
subcommand or an option touches only that function's decorator. Functions import what they need when
called: ``mmkd --help``, ``sweep validate`` and ``sweep status`` must not wait for torch or Ray.

Errors become exit codes in ``main`` only (docs/DESIGN.md, "CLI and exit codes"): ``UserInputError``
is exit 2 with one line, a full or unwritable storage exit 1 with one line, Ctrl-C exit 130 with the
resume command.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmkd.errors import UserInputError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserInputError as e:
        print(f"mmkd: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = getattr(args, "resume_hint", None)
        print("\nmmkd: interrupted" + (f"; resume with: {hint}" if hint else ""), file=sys.stderr)
        return 130
    except Exception as e:
        fault = storage_fault(e)
        if fault is None:
            raise
        # A full or unwritable disk is the machine's state, not a bug: one line, not a traceback. Every
        # mmkd file is written whole or not at all (mmkd.atomic), so what is left is safe to resume.
        hint, path = getattr(args, "resume_hint", None), getattr(args, "resume_path", None)
        # A sweep whose config was never written is not resumable: the same command starts it again.
        if hint and path is not None and not (path / "mmkd" / "config.yaml").is_file():
            hint = None
        then = f"; once fixed, resume with: {hint}" if hint else "; once fixed, run the command again"
        print(f"mmkd: error: storage: {fault.filename or ''}: {fault.strerror}{then}", file=sys.stderr)
        return 1


STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR}


def storage_fault(error: BaseException) -> OSError | None:
    """The storage error behind ``error``, also when a Ray task raised it (Ray wraps it as ``cause``)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
            return e
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return None


# ---------------------------------------------------------------------------------------------------
# What --help shows
# ---------------------------------------------------------------------------------------------------

DESCRIPTION = """\
Hyperparameter sweeps for multilingual knowledge distillation: Ray Tune runs the trials, Optuna picks
the learning rate, adapter rank and teacher/student pair, and each trial reports task quality and the
wrong-language rate of its students in zero-shot languages. `mmkd COMMAND --help` describes a command."""
EXIT_CODES = """\
exit codes: 0 ok; 2 bad input (one line naming the bad key or value, nothing launched); 1 runtime
failure (a full or unwritable storage: one line); 130 interrupted (the resume command is printed)"""
GROUPS = {
    "sweep": "run, resume, inspect and validate sweeps",
    "trial": "run one trial without Ray (debugging)",
    "zoo": "the offline tiny model family",
    "data": "tasks and their examples",
}


@dataclass(frozen=True)
class Arg:
    """One ``add_argument`` call: its flags (or positional name) and keyword options."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]  # ("sweep", "run"): a group, if any, then the command
    func: Handler
    summary: str  # one line, in the list of its group's commands
    description: str  # what it does, at the top of its --help
    args: tuple[Arg, ...]


COMMANDS: list[Command] = []


def command(words: str, summary: str, *args: Arg, description: str = "") -> Callable[[Handler], Handler]:
    """Register a subcommand: ``@command("sweep run", "run a sweep", SWEEP, SET)``."""

    def register(func: Handler) -> Handler:
        described = description or f"{summary[0].upper()}{summary[1:]}."
        COMMANDS.append(Command(tuple(words.split()), func, summary, described, args))
        return func

    return register


SWEEP = arg(
    "sweep",
    metavar="SWEEP",
    help="a sweep YAML file, or the name of a sweep shipped with mmkd (e.g. quickstart)",
)
EXPERIMENT = arg(
    "experiment",
    metavar="EXPERIMENT",
    help="the sweep's folder (<storage>/<name>), or its name under --storage",
)
STORAGE = arg("--storage", help="the folder holding sweeps, to find one by name (default: runs)")
ADDRESS = arg("--address", help="a running Ray cluster to join (default: start a local Ray of its own)")
SET = arg(
    "--set",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="override a config value, e.g. train.max_steps=50 (repeatable; the value is YAML)",
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 (got {text!r})")
    return value


# ---------------------------------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------------------------------


@command(
    "sweep run",
    "run a sweep (on a local Ray unless --address)",
    SWEEP,
    arg("--name", help="the sweep's name, its folder under --storage (default: the YAML's name)"),
    arg("--storage", help="the folder or URI holding sweeps (default: the YAML's storage, runs)"),
    ADDRESS,
    arg("--resume", action="store_true", help="if the sweep exists, resume it instead of refusing"),
    arg(
        "--simulate",
        action="store_true",
        help="trials follow a synthetic learning-curve and cost model instead of training (the same as "
        "--set simulate.enabled=true; a resumed sweep simulates too)",
    ),
    SET,
    description="Run a sweep: prepare the tiny models, teachers and teacher-output cache it needs (cached "
    "by content), search with Ray Tune and Optuna, stop trials that drift into the wrong language, then "
    "write the results table and print the best trials. Everything lands in <storage>/<name>/. An "
    "existing sweep of the same name is refused (exit 2) unless --resume.",
)
def sweep_run(args: argparse.Namespace) -> int:
    from mmkd import config
    from mmkd.sweep import runner

    sweep = config.load(args.sweep, [*args.set, *(["simulate.enabled=true"] if args.simulate else [])])
    name = args.name or sweep.name
    path = Path(args.storage or sweep.storage) / name
    args.resume_hint, args.resume_path = f"mmkd sweep resume {path}", path
    if args.resume and (path / "mmkd" / "config.yaml").is_file():  # else nothing was recorded: start
        return runner.resume(str(path), address=args.address)
    return runner.run(sweep, name=args.name, storage=args.storage, address=args.address)


@command(
    "sweep resume",
    "continue an interrupted sweep",
    EXPERIMENT,
    STORAGE,
    ADDRESS,
    description="Continue an interrupted or crashed sweep: finish what its preparation left, restore "
    "Tune's experiment and the Optuna study, and continue unfinished trials from their last checkpoint, "
    "so the sweep ends with exactly search.num_samples trials.",
)
def sweep_resume(args: argparse.Namespace) -> int:
    from mmkd.sweep import runner

    args.resume_hint = f"mmkd sweep resume {args.experiment}"
    return runner.resume(args.experiment, storage=args.storage, address=args.address)


@command(
    "sweep confirm",
    "retrain each cell's best configuration with seeds, on the test split",
    EXPERIMENT,
    STORAGE,
    ADDRESS,
    arg("--seeds", type=_positive_int, help="seeds per cell (default: confirm.seeds, or 3)"),
    arg(
        "--select-on",
        choices=["source", "target"],
        help="the dev score that picks a cell's configuration (default: confirm.select_on, or source)",
    ),
    description="The confirm stage of a finished search: per cell (student, teacher, adapter rank, "
    "method) the search trial with the best dev score is trained again with new seeds and evaluated on "
    "the test split of every language. Resumable like the search (`mmkd sweep resume`).",
)
def sweep_confirm(args: argparse.Namespace) -> int:
    from mmkd.sweep import confirm

    args.resume_hint = f"mmkd sweep resume {args.experiment}"
    return confirm.confirm(
        args.experiment,
        storage=args.storage,
        address=args.address,
        seeds=args.seeds,
        select_on=args.select_on,
    )


@command(
    "sweep status",
    "trial states and the best trials so far",
    EXPERIMENT,
    STORAGE,
    description="Print a sweep's trial counts by state, the stage its driver is in (and whether it is "
    "running or was interrupted, with the resume command) and its best trials so far. Reads files only: "
    "works on running, finished and interrupted sweeps.",
)
def sweep_status(args: argparse.Namespace) -> int:
    from mmkd.sweep import runner

    print(runner.status(args.experiment, storage=args.storage))
    return 0


@command(
    "sweep dashboard",
    "the sweep's Optuna study in optuna-dashboard",
    EXPERIMENT,
    STORAGE,
    arg("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"),
    arg("--port", type=int, default=8080, help="port (default: 8080)"),
    description="Serve the sweep's Optuna study in optuna-dashboard until Ctrl-C "
    "(needs pip install 'mmkd[dashboard]').",
)
def sweep_dashboard(args: argparse.Namespace) -> int:
    from mmkd import config
    from mmkd.sweep import runner
    from mmkd.sweep.study import serve_dashboard

    exp = runner.Experiment.locate(args.experiment, args.storage)
    serve_dashboard(config.load(exp.mmkd / runner.CONFIG_FILE), exp.mmkd, args.host, args.port)
    return 0


@command(
    "sweep validate",
    "check a sweep and print it resolved",
    SWEEP,
    SET,
    description="Check a sweep without running anything: print the resolved config as YAML (every "
    "default filled in) and, on stderr, the number of trials and teacher:student pairs; a mistake is "
    "one line naming the key and the bad value (exit 2).",
)
def sweep_validate(args: argparse.Namespace) -> int:
    from mmkd import config

    sweep = config.load(args.sweep, args.set)
    print(config.dump(sweep), end="")
    pairs = ", ".join(f"{t}:{s}" for t, s in sweep.pairs())
    print(f"# valid: {sweep.search.num_samples} trials over teacher:student pairs {pairs}", file=sys.stderr)
    return 0


@command(
    "sweep plan",
    "memory per worker, strategy and GPU-hours of a sweep; exit 2 if it cannot fit",
    SWEEP,
    SET,
    description="Plan a sweep offline, loading no weights: per teacher finetune and per (teacher, student, "
    "adapter rank) the parameters held and trained, the peak memory per worker under ddp and fsdp, the "
    "layout it will use and its GPU-hours (docs: mmkd/plan.py). A job that fits no GPU of "
    "resources.gpu_memory_gb exits 2 with one line; sweep run and sweep submit make the same check.",
)
def sweep_plan(args: argparse.Namespace) -> int:
    from mmkd import config, plan

    sweep = config.load(args.sweep, args.set)
    print(plan.describe(plan.plan(sweep)))
    plan.check(sweep)
    return 0


@command(
    "sweep submit",
    "run a sweep on a Ray cluster as a Ray job",
    SWEEP,
    arg(
        "--address", help="the cluster's dashboard, e.g. http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS)"
    ),
    arg("--name", help="the sweep's name (default: the YAML's name)"),
    arg("--storage", help="a folder (relative: under the head's home) or URI (default: the YAML's)"),
    arg("--follow", action="store_true", help="stream the job's logs; exit 0 if it succeeds, else 1"),
    SET,
    description="Validate a sweep here, then submit it through the Ray Jobs API: the Tune driver runs on "
    "the cluster's head and survives this machine going to sleep. Prints the job id and the commands "
    "to follow or stop it.",
)
def sweep_submit(args: argparse.Namespace) -> int:
    from mmkd.sweep import cluster

    return cluster.submit(
        args.sweep, args.set, address=args.address, name=args.name, storage=args.storage, follow=args.follow
    )


@command(
    "trial run",
    "run one trial of a sweep locally, without Ray",
    SWEEP,
    SET,
    arg("--lr", type=float, help="learning rate (default: the geometric middle of the searched range)"),
    arg("--rank", type=int, help="adapter rank, 0 = full finetuning (default: the first searched)"),
    arg("--teacher", help="teacher size (default: the first of the space)"),
    arg("--student", help="student size (default: the first of the space)"),
    arg("--out", default="runs/trial", help="folder for its checkpoint, results and examples"),
    description="Run one trial of a sweep in this process, for debugging: its models and teacher are "
    "prepared (or found cached) first; prints its last report without the per-language metrics.",
)
def trial_run(args: argparse.Namespace) -> int:
    from mmkd.names import per_language
    from mmkd.trial import run_local

    report = run_local(
        args.sweep,
        args.set,
        out=Path(args.out),
        lr=args.lr,
        rank=args.rank,
        teacher=args.teacher,
        student=args.student,
    )
    print(json.dumps({k: v for k, v in report.items() if not per_language(k)}, indent=1))
    return 0


@command(
    "curves",
    "scaling curves, tables and a report from a sweep",
    EXPERIMENT,
    STORAGE,
    arg("--out", help="output folder (default: <experiment>/mmkd/curves)"),
    description="Turn a sweep's results (finished, partial or still running) into its tidy table, plots "
    "against the teacher/student ratio with fitted curves, and report.md.",
)
def curves(args: argparse.Namespace) -> int:
    from mmkd.curves.aggregate import find_experiment
    from mmkd.curves.report import build_curves

    exp = find_experiment(args.experiment, args.storage or "runs")
    report = build_curves(exp, Path(args.out) if args.out else None)
    print(f"curves and report: {report}")
    return 0


@command(
    "zoo build",
    "pretrain (or find cached) the tiny models",
    arg("--sweep", default="quickstart", help="take the zoo settings from this sweep (default: quickstart)"),
    arg("--sizes", help="comma-separated sizes, e.g. xs,s (default: all)"),
    description="Pretrain the offline tiny model family, or find it in the model cache ($MMKD_CACHE, "
    "default ~/.cache/mmkd); prints each size's folder.",
)
def zoo_build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mmkd import config
    from mmkd.models import get_family
    from mmkd.models.zoo import ensure_built, zoo_corpus

    sweep = config.load(args.sweep)
    settings = sweep.family.zoo
    family = get_family("tiny")
    sizes = args.sizes.split(",") if args.sizes else [s.name for s in family.sizes]
    for size in sizes:
        family.size(size)  # validates the name before anything trains
    corpus = zoo_corpus(settings)
    for size in sizes:
        with tqdm(total=settings.steps, desc=f"zoo {size}", unit="step") as bar:

            def progress(step: int, loss: float, bar: tqdm = bar) -> None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

            path = ensure_built(size, settings, corpus, progress=progress)
        print(f"{size}: {path}")
    return 0


@command(
    "data show",
    "print examples of a task",
    arg("task", metavar="TASK", help="a task, e.g. builtin/cldr or xtreme_r/xquad"),
    arg("--lang", required=True, help="the language of the examples"),
    arg("--split", default="dev", choices=["train", "dev", "test"], help="default: dev"),
    arg("-n", type=int, default=5, help="how many (default: 5)"),
    arg("--data-dir", help="a local copy of a hub task's data (xtreme_r/*)"),
    description="Print the first examples of a task's split in one language.",
)
def data_show(args: argparse.Namespace) -> int:
    from mmkd.data import format_examples, get_task

    task = get_task(args.task, **({"data_dir": args.data_dir} if args.data_dir else {}))
    print(format_examples(task, args.split, args.lang, args.n))
    return 0


@command(
    "wlr",
    "wrong-language rate of any system's outputs",
    arg(
        "file",
        metavar="FILE",
        help="JSON lines, each with output and lang (the expected language), optionally reference",
    ),
    arg("--json", action="store_true", help="print one JSON object instead of a table"),
    arg("--tau", type=float, help="the least LID probability of a verdict (default: eval.tau's, 0.3)"),
    arg("--backend", default="fasttext", help="language-ID backend: fasttext (default) or cld2"),
    arg("--source-lang", default="en", help="for src_rate, the share of outputs in this language"),
    description="The wrong-language rate of any system's outputs, per expected language. fastText lid.176 "
    "identifies each output: it is wrong when the top label is another language with probability >= "
    "--tau, undetermined (counted apart) when it has fewer than 3 letters or its top label is below "
    "--tau; WLR = wrong / determined. With references, the detector's accuracy on them is reported too.",
)
def wlr(args: argparse.Namespace) -> int:
    from mmkd.eval.langid import TAU, get_langid
    from mmkd.eval.wlr_file import format_table, score_jsonl, to_json

    path = Path(args.file)
    if not path.is_file():
        raise UserInputError(f"{path}: no such file")
    tau = TAU if args.tau is None else args.tau
    stats = score_jsonl(path, langid=get_langid(args.backend), tau=tau, source_lang=args.source_lang)
    print(json.dumps(to_json(stats), indent=1) if args.json else format_table(stats))
    return 0


# ---------------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------------


_FORMAT: dict[str, Any] = {"epilog": EXIT_CODES}  # argparse wraps descriptions to the terminal


def _parser() -> argparse.ArgumentParser:
    """argparse from ``COMMANDS``: a group (``sweep``) without its command prints its help (exit 2)."""
    top = argparse.ArgumentParser(prog="mmkd", description=DESCRIPTION, **_FORMAT)
    subs = {"": top.add_subparsers(title="commands", metavar="COMMAND")}  # by group: "", "sweep", ...
    for cmd in COMMANDS:
        group, name = " ".join(cmd.words[:-1]), cmd.words[-1]
        if group not in subs:
            parent = subs[""].add_parser(group, help=GROUPS[group], description=GROUPS[group], **_FORMAT)
            parent.set_defaults(func=lambda _args, parent=parent: (parent.print_help(), 2)[1])
            subs[group] = parent.add_subparsers(title="commands", metavar="COMMAND")
        parser = subs[group].add_parser(name, help=cmd.summary, description=cmd.description, **_FORMAT)
        parser.set_defaults(func=cmd.func)
        for a in cmd.args:
            parser.add_argument(*a.flags, **a.options)
    return top


if __name__ == "__main__":
    sys.exit(main())
