"""The ``mmkd`` command: parses arguments and calls one function per subcommand.

    mmkd sweep run SWEEP.yaml [--name N] [--storage DIR] [--address ADDR] [--resume] [--simulate] [--set ...]
    mmkd sweep resume NAME_OR_PATH [--storage DIR]
    mmkd sweep confirm NAME_OR_PATH [--seeds N] [--select-on source|target]
    mmkd sweep status NAME_OR_PATH [--storage DIR]
    mmkd sweep validate SWEEP.yaml [--set a.b=v ...]
    mmkd sweep plan SWEEP.yaml [--set a.b=v ...]
    mmkd sweep submit SWEEP.yaml --address http://HEAD:8265 [--name N] [--storage S] [--follow] [--set ...]
    mmkd sweep dashboard NAME_OR_PATH [--storage DIR] [--host H] [--port P]
    mmkd trial run SWEEP.yaml [--lr X --rank R --teacher T --student S] [--out DIR]
    mmkd curves NAME_OR_PATH [--out DIR]
    mmkd zoo build [--sweep SWEEP.yaml] [--sizes xs,s]
    mmkd data show TASK --lang L [--split dev] [-n 5]
    mmkd wlr FILE.jsonl [--json]

Exit codes: 0 ok; 2 bad input (one line on stderr naming the bad key or value; nothing launched);
1 runtime failure; 130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

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
# Subcommands
# ---------------------------------------------------------------------------------------------------


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


def sweep_resume(args: argparse.Namespace) -> int:
    from mmkd.sweep import runner

    args.resume_hint = f"mmkd sweep resume {args.experiment}"
    return runner.resume(args.experiment, storage=args.storage, address=args.address)


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


def sweep_status(args: argparse.Namespace) -> int:
    from mmkd.sweep import runner

    print(runner.status(args.experiment, storage=args.storage))
    return 0


def sweep_dashboard(args: argparse.Namespace) -> int:
    from mmkd import config
    from mmkd.sweep import runner
    from mmkd.sweep.study import serve_dashboard

    exp = runner.Experiment.locate(args.experiment, args.storage)
    serve_dashboard(config.load(exp.mmkd / runner.CONFIG_FILE), exp.mmkd, args.host, args.port)
    return 0


def sweep_validate(args: argparse.Namespace) -> int:
    from mmkd import config

    sweep = config.load(args.sweep, args.set)
    print(config.dump(sweep), end="")
    pairs = ", ".join(f"{t}:{s}" for t, s in sweep.pairs())
    print(f"# valid: {sweep.search.num_samples} trials over teacher:student pairs {pairs}", file=sys.stderr)
    return 0


def sweep_plan(args: argparse.Namespace) -> int:
    from mmkd import config, plan

    sweep = config.load(args.sweep, args.set)
    print(plan.describe(plan.plan(sweep)))
    plan.check(sweep)
    return 0


def sweep_submit(args: argparse.Namespace) -> int:
    from mmkd.sweep import cluster

    return cluster.submit(
        args.sweep, args.set, address=args.address, name=args.name, storage=args.storage, follow=args.follow
    )


def trial_run(args: argparse.Namespace) -> int:
    from mmkd.eval.evaluate import per_language
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


def curves(args: argparse.Namespace) -> int:
    from mmkd.curves.aggregate import find_experiment
    from mmkd.curves.report import build_curves

    exp = find_experiment(args.experiment, args.storage or "runs")
    report = build_curves(exp, Path(args.out) if args.out else None)
    print(f"curves and report: {report}")
    return 0


def zoo_build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mmkd import config
    from mmkd.models import get_family
    from mmkd.models.zoo import ZooSettings, ensure_built, zoo_corpus

    sweep = config.load(args.sweep)
    settings = ZooSettings(**sweep.family.zoo.model_dump())
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


def data_show(args: argparse.Namespace) -> int:
    from mmkd.data import format_examples, get_task

    task = get_task(args.task, **({"data_dir": args.data_dir} if args.data_dir else {}))
    print(format_examples(task, args.split, args.lang, args.n))
    return 0


def wlr(args: argparse.Namespace) -> int:
    from mmkd.eval.langid import get_langid
    from mmkd.eval.wlr_file import format_table, score_jsonl, to_json

    path = Path(args.file)
    if not path.is_file():
        raise UserInputError(f"{path}: no such file")
    stats = score_jsonl(path, langid=get_langid(args.backend), tau=args.tau, source_lang=args.source_lang)
    print(json.dumps(to_json(stats), indent=1) if args.json else format_table(stats))
    return 0


# ---------------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmkd", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(title="commands")

    sweep = _group(sub, "sweep", "run, resume, inspect and validate sweeps")
    run = _cmd(sweep, "run", sweep_run, "run a sweep (local Ray unless --address)")
    run.add_argument("sweep", help="sweep YAML, or the name of a shipped sweep (quickstart)")
    run.add_argument("--name", help="experiment name (default: the YAML's name)")
    run.add_argument("--storage", help="directory or URI holding experiments (default: the YAML's, ./runs)")
    run.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    run.add_argument(
        "--resume", action="store_true", help="if the sweep exists, resume it instead of refusing"
    )
    run.add_argument(
        "--simulate",
        action="store_true",
        help="scale simulation: trials follow a synthetic learning-curve/cost model instead of training "
        "(same as --set simulate.enabled=true; kept for resume)",
    )
    _set_option(run)
    res = _cmd(sweep, "resume", sweep_resume, "continue an interrupted sweep")
    res.add_argument("experiment", help="experiment directory, or its name under --storage")
    res.add_argument("--storage")
    res.add_argument("--address")
    _confirm_parser(sweep)
    st = _cmd(sweep, "status", sweep_status, "trial states and the best trials so far")
    st.add_argument("experiment")
    st.add_argument("--storage")
    dash = _cmd(sweep, "dashboard", sweep_dashboard, "the sweep's Optuna study in optuna-dashboard")
    dash.add_argument("experiment", help="experiment directory, or its name under --storage")
    dash.add_argument("--storage")
    dash.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    dash.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    val = _cmd(sweep, "validate", sweep_validate, "check a sweep YAML and print it resolved")
    val.add_argument("sweep")
    _set_option(val)
    pl = _cmd(sweep, "plan", sweep_plan, "memory per worker, strategy and GPU-hours; exit 2 if it cannot fit")
    pl.add_argument("sweep", help="sweep YAML, or the name of a shipped sweep (quickstart)")
    _set_option(pl)
    submit = _cmd(sweep, "submit", sweep_submit, "run a sweep on a Ray cluster as a Ray job")
    submit.add_argument("sweep", help="sweep YAML, or the name of a shipped sweep (quickstart)")
    submit.add_argument(
        "--address", help="the cluster's dashboard, e.g. http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS)"
    )
    submit.add_argument("--name", help="experiment name (default: the YAML's name)")
    submit.add_argument(
        "--storage", help="directory (relative: under the head's home) or URI (default: the YAML's)"
    )
    submit.add_argument(
        "--follow", action="store_true", help="stream the job's logs; exit 0 if it succeeds, else 1"
    )
    _set_option(submit)

    trial = _group(sub, "trial", "run one trial without Ray (debugging)")
    tr = _cmd(trial, "run", trial_run, "run one trial of a sweep locally")
    tr.add_argument("sweep")
    _set_option(tr)
    tr.add_argument("--lr", type=float, help="default: the geometric middle of the searched range")
    tr.add_argument(
        "--rank", type=int, help="adapter rank (0 = full finetuning); default: the first searched"
    )
    tr.add_argument("--teacher", help="teacher size; default: the first of the space")
    tr.add_argument("--student", help="student size; default: the first of the space")
    tr.add_argument("--out", default="runs/trial", help="folder for checkpoint, results, examples")

    cur = _cmd(sub, "curves", curves, "scaling curves, tables and a report from a sweep")
    cur.add_argument("experiment")
    cur.add_argument("--storage")
    cur.add_argument("--out", help="output folder (default: <experiment>/mmkd/curves)")

    zoo = _group(sub, "zoo", "the offline tiny model family")
    zb = _cmd(zoo, "build", zoo_build, "pretrain (or find cached) tiny models")
    zb.add_argument("--sweep", default="quickstart", help="take the zoo settings from this sweep")
    zb.add_argument("--sizes", help="comma-separated sizes (default: all)")

    data = _group(sub, "data", "tasks and their examples")
    ds = _cmd(data, "show", data_show, "print examples of a task")
    ds.add_argument("task")
    ds.add_argument("--lang", required=True)
    ds.add_argument("--split", default="dev", choices=["train", "dev", "test"])
    ds.add_argument("-n", type=int, default=5)
    ds.add_argument("--data-dir", help="local copy of a hub task's data (xtreme_r/*)")

    w = _cmd(sub, "wlr", wlr, "wrong-language rate of any system's outputs (JSON lines: output, lang)")
    w.add_argument("file")
    w.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    w.add_argument("--tau", type=float, default=0.3)
    w.add_argument("--backend", default="fasttext", help="language-ID backend")
    w.add_argument("--source-lang", default="en", help="for src_rate: outputs in this language")
    return p


def _confirm_parser(sweep: argparse._SubParsersAction) -> None:
    con = _cmd(
        sweep,
        "confirm",
        sweep_confirm,
        "retrain each cell's best configuration with seeds, on the test split",
    )
    con.add_argument("experiment", help="experiment directory, or its name under --storage")
    con.add_argument("--storage")
    con.add_argument("--address")
    con.add_argument("--seeds", type=_positive_int, help="seeds per cell (default: confirm.seeds, or 3)")
    con.add_argument(
        "--select-on",
        choices=["source", "target"],
        help="dev score that picks a cell's configuration (default: confirm.select_on, or source)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 (got {text!r})")
    return value


def _group(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    parser = sub.add_parser(name, help=help, description=help)
    parser.set_defaults(func=lambda _args, parser=parser: (parser.print_help(), 2)[1])
    return parser.add_subparsers(title="commands")


def _cmd(
    sub: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int], help: str
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=help)
    parser.set_defaults(func=func)
    return parser


def _set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. train.max_steps=50 (repeatable)",
    )


if __name__ == "__main__":
    sys.exit(main())
