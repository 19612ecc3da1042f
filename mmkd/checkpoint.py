"""Trial checkpoints: safetensors for tensors, a small JSON for the rest.

A checkpoint holds the trainable tensors only (the LoRA adapter, or the whole student when fully
finetuned, plus any distillation heads), the optimiser's tensors, the step and the states of the random
generators (Python ``random``, torch CPU and CUDA: dropout draws from them), so a trial resumed from it
continues exactly where it stopped. A checkpoint is written to a temporary folder and renamed, so a crash
mid-write never leaves a half checkpoint that looks whole.

The format is that of one process whatever the run's layout: a sharded run (mmkd.sharding) gathers full
tensors for ``write`` and restores through its own ``apply``, so a checkpoint restores under any strategy
and worker count.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

MODEL_FILE, OPTIM_FILE, META_FILE = "trainable.safetensors", "optimizer.safetensors", "state.json"
RNG_FILE = "rng.safetensors"
# Which save each file belongs to: in state.json and in every safetensors file's metadata. Tune copies a
# checkpoint's files one by one into its folder, over those of an older checkpoint of the same name (a
# trial resumed from an older checkpoint reuses the names of the later ones), so a kill mid-copy can
# leave whole files of two saves side by side.
SAVE_KEY = "mmkd_save"

Tensors = dict[str, dict[str, torch.Tensor]]  # module key -> parameter name -> tensor
# Loads checked tensors and optimiser state (``optimizer.state_dict()``'s format) into modules and optimiser.
Apply = Callable[[dict[str, torch.nn.Module], torch.optim.Optimizer, Tensors, dict[str, Any]], None]


class CheckpointError(RuntimeError):
    """A checkpoint that is missing files or does not match the model it is loaded into."""


@dataclass(frozen=True)
class RNGState:
    """The process's random generators at one moment. numpy's is left out: nothing a trial runs draws
    from it (and the trial does not seed it)."""

    python: tuple[Any, ...]
    torch_cpu: torch.Tensor
    cuda: tuple[torch.Tensor, ...]

    @classmethod
    def capture(cls) -> RNGState:
        cuda = tuple(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else ()
        return cls(random.getstate(), torch.get_rng_state(), cuda)

    def restore(self) -> None:
        random.setstate(self.python)
        torch.set_rng_state(self.torch_cpu)
        # A resume on fewer GPUs restores the devices it has; on a CPU-only machine, none.
        for device in range(
            min(len(self.cuda), torch.cuda.device_count() if torch.cuda.is_available() else 0)
        ):
            torch.cuda.set_rng_state(self.cuda[device], device)


def trainable_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous() for n, p in module.named_parameters() if p.requires_grad}


def save(
    path: Path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer, meta: dict[str, Any]
) -> Path:
    """A checkpoint of replicated modules (one process, or DDP)."""
    return write(path, {key: trainable_state(m) for key, m in modules.items()}, optimizer.state_dict(), meta)


def write(path: Path, tensors: Tensors, optimizer_state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write full ``tensors`` and ``optimizer_state`` (``optimizer.state_dict()``'s format)."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    stamp = {SAVE_KEY: uuid.uuid4().hex}
    flat = {f"{key}/{n}": t.contiguous() for key, state in tensors.items() for n, t in state.items()}
    save_file(flat, str(tmp / MODEL_FILE), metadata=stamp)
    opt_tensors, opt_meta = _flatten_optimizer(optimizer_state)
    save_file(opt_tensors, str(tmp / OPTIM_FILE), metadata=stamp)
    rng = RNGState.capture()
    rng_tensors = {"torch_cpu": rng.torch_cpu, **{f"cuda/{i}": t for i, t in enumerate(rng.cuda)}}
    save_file(rng_tensors, str(tmp / RNG_FILE), metadata=stamp)
    (tmp / META_FILE).write_text(
        json.dumps({**meta, "optimizer": opt_meta, "rng_python": rng.python, **stamp})
    )
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def load(
    path: Path,
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    apply: Apply | None = None,
) -> dict[str, Any]:
    """Load into ``modules`` and ``optimizer`` in place (by ``apply``; default: replicated modules);
    returns the JSON meta (step, scheduler, ...) and under ``rng`` the ``RNGState`` at the save (None for a
    checkpoint written before they were saved), for the caller to restore once its own setup has drawn
    its initialisations. Every file is read before anything is loaded, so a damaged checkpoint leaves the
    modules untouched."""
    tensors, meta, opt_tensors = _read(path, MODEL_FILE, META_FILE, OPTIM_FILE)
    try:  # a state.json that parses but lacks what a resume needs is as damaged as a truncated one
        saved = meta.pop(SAVE_KEY, None)  # None: a checkpoint from before files were stamped
        rng = _read_rng(path, meta.pop("rng_python", None))
        opt_state = _unflatten_optimizer(opt_tensors, meta.pop("optimizer"))
        int(meta["step"])
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt: {META_FILE}: {type(e).__name__}: {e}") from e
    if saved is not None:
        _check_one_save(path, saved, (MODEL_FILE, OPTIM_FILE, *((RNG_FILE,) if rng is not None else ())))
    groups = [len(g["params"]) for g in opt_state["param_groups"]]
    expected = [len(g["params"]) for g in optimizer.param_groups]
    if groups != expected:  # checked first: the optimiser would refuse only after the modules were filled
        raise CheckpointError(
            f"checkpoint {path} does not match the optimiser: parameter groups of {groups} tensors, "
            f"expected {expected}"
        )
    states = _split(path, tensors, modules)
    try:
        (apply or apply_replicated)(modules, optimizer, states, opt_state)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} does not match the optimiser: {e}") from e
    return {**meta, "rng": rng}


def apply_replicated(
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    states: Tensors,
    opt: dict[str, Any],
) -> None:
    for key, module in modules.items():
        module.load_state_dict(states[key], strict=False)
    optimizer.load_state_dict(opt)


def restore(
    folder: Path | None,
    name: str,
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    apply: Apply | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """Load the newest readable checkpoint: ``folder/name`` (the one Tune restored), else an older one
    beside it (Tune keeps a trial's last two as ``checkpoint_<n>`` folders). Returns its meta (None: start
    from step 0) and ``resumed_from``, what the trial's reports carry: ``""`` for a fresh start, else e.g.
    ``checkpoint_000003 (step 30)`` or ``checkpoint_000002 (step 20; checkpoint_000003 unreadable)``.

    A damaged checkpoint must not end the sweep, nor cost the trial more than the steps since the
    previous good one; each unreadable one is said on stderr (the trial's log)."""
    if folder is None:
        return None, ""
    candidates = [folder]
    if folder.name.startswith("checkpoint_"):
        older = [p for p in folder.parent.glob("checkpoint_*") if p.is_dir() and p.name < folder.name]
        candidates += sorted(older, reverse=True)
    bad: list[str] = []
    for candidate in candidates:
        try:
            meta = load(candidate / name, modules, optimizer, apply)
        except CheckpointError as e:
            print(f"mmkd: {e}; trying the previous checkpoint", file=sys.stderr, flush=True)
            bad.append(candidate.name)
            continue
        note = f"; {', '.join(bad)} unreadable" if bad else ""
        return meta, f"{candidate.name} (step {meta['step']}{note})"
    print("mmkd: no readable checkpoint; restarting this trial from step 0", file=sys.stderr, flush=True)
    return None, f"step 0 ({', '.join(bad)} unreadable)"


def load_weights(path: Path, modules: dict[str, torch.nn.Module]) -> None:
    """Only the trainable tensors, into ``modules`` in place: what evaluating a checkpoint needs."""
    (tensors,) = _read(path, MODEL_FILE)
    for key, state in _split(path, tensors, modules).items():
        modules[key].load_state_dict(state, strict=False)


def _read(path: Path, *names: str) -> list[Any]:
    missing = [name for name in names if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {', '.join(missing)}")
    try:
        return [
            json.loads((path / name).read_text()) if name == META_FILE else load_file(str(path / name))
            for name in names
        ]
    except Exception as e:  # safetensors and json raise several types for a damaged file
        raise CheckpointError(f"checkpoint {path} is corrupt: {type(e).__name__}: {e}") from e


def _check_one_save(path: Path, saved: str, names: tuple[str, ...]) -> None:
    for name in names:
        with safe_open(str(path / name), "pt") as f:
            if (f.metadata() or {}).get(SAVE_KEY) != saved:
                raise CheckpointError(
                    f"checkpoint {path} is mixed: {name} is from another save than {META_FILE}"
                )


def _read_rng(path: Path, python: list[Any] | None) -> RNGState | None:
    if python is None:
        return None
    (tensors,) = _read(path, RNG_FILE)
    if "torch_cpu" not in tensors:
        raise CheckpointError(f"checkpoint {path} is corrupt: {RNG_FILE} has no torch_cpu state")
    cuda = tuple(tensors[f"cuda/{i}"] for i in range(sum(k.startswith("cuda/") for k in tensors)))
    # JSON made the state's tuples lists; random.setstate wants (version, tuple of ints, gauss_next).
    return RNGState((python[0], tuple(python[1]), python[2]), tensors["torch_cpu"], cuda)


def _split(path: Path, tensors: dict[str, torch.Tensor], modules: dict[str, torch.nn.Module]) -> Tensors:
    """The flat file's tensors per module, checked against each module's trainable parameters."""
    states: Tensors = {}
    for key, module in modules.items():
        expected = set(trainable_state(module))
        state = {n.split("/", 1)[1]: t for n, t in tensors.items() if n.split("/", 1)[0] == key}
        if set(state) != expected:
            raise CheckpointError(
                f"checkpoint {path} does not match {key}: {len(expected ^ set(state))} tensors differ"
            )
        states[key] = state
    return states


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state["state"].items():
        for name, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}/{name}"] = value.contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split("/", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    # JSON turned tuples (e.g. Adam's betas) into lists; the optimiser expects them back as they were.
    groups = [
        {k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
        for g in meta["param_groups"]
    ]
    return {"state": state, "param_groups": groups}
