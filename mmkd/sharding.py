"""``resources.strategy: fsdp``: the student's parameters, gradients and optimiser state sharded between
the workers of a trial's Ray Train run, with torch's FSDP2 (``torch.distributed.fsdp.fully_shard``).

Accelerate (1.16) turns its FSDP plugin on only for GPU processes (a CPU process group never becomes
``DistributedType.FSDP``), so the recipe shards the student itself, one code path for CPU (gloo) and GPU
(NCCL): each transformer block is one FSDP unit (gathered whole for its forward and backward, sharded
again after), the rest of the model (embeddings, final norms, LM head) the root unit. Accelerate keeps the
device, backward and the optimiser/scheduler wrappers (mmkd/trial.py); mixed precision is FSDP's own
(``shard``), since Accelerate's autocast wraps only the models it prepares.

The MMKD heads stay replicated outside FSDP, as under DDP. Checkpoints hold full tensors in the format
of a one-process run (mmkd/checkpoint.py): gathered with ``torch.distributed.checkpoint.state_dict``'s
full-state options, restored by sharding full tensors again, so they restore under any strategy and
worker count.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

# Full tensors, gathered one at a time to rank 0's CPU memory: no rank ever holds a second full model;
# the frozen ones (a LoRA student's base) are not gathered at all: a checkpoint holds the trainable ones.
FULL = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
PRECISIONS = {"no": None, "bf16": torch.bfloat16}  # fp16 is refused by the plan (mmkd.plan.check)


def blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks of a seq2seq model (plain or peft-wrapped): the elements of its outermost
    ``ModuleList``s (T5's ``encoder.block``, M2M100/mBART's ``encoder.layers``, ...). Lists inside a
    block (T5's ``layer``) belong to their block's unit."""
    found: list[torch.nn.Module] = []
    inside: set[int] = set()
    for module in model.modules():
        if id(module) in inside:
            continue
        if isinstance(module, torch.nn.ModuleList):
            found.extend(module)
            inside.update(id(m) for block in module for m in block.modules())
    return found


def shard(model: torch.nn.Module, device: torch.device, precision: str) -> FSDPModule:
    """Shard ``model`` in place between all the processes of the default process group: every block,
    then the root. ``precision`` (``no``/``bf16``, Accelerate's names): the dtype the gathered
    parameters compute in; gradients are reduced and the optimiser steps in fp32, and the root's outputs
    come back in fp32 (as Accelerate's prepared model returns them), for the losses and the heads."""
    world = torch.distributed.get_world_size()
    mesh = init_device_mesh(device.type, (world,))
    if precision not in PRECISIONS:
        raise ValueError(f"fsdp runs in fp32 or bf16, not {precision}")
    dtype = PRECISIONS[precision]
    policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32 if dtype else None)
    for block in blocks(model):
        fully_shard(block, mesh=mesh, mp_policy=policy)
    root = MixedPrecisionPolicy(
        param_dtype=dtype, reduce_dtype=policy.reduce_dtype, output_dtype=torch.float32 if dtype else None
    )
    sharded = fully_shard(model, mesh=mesh, mp_policy=root)
    assert isinstance(sharded, FSDPModule)
    return sharded


@contextmanager
def gathered_root(model: FSDPModule) -> Iterator[None]:
    """Generation with a sharded model, on every rank in lockstep: HF ``generate`` calls the encoder
    directly (not the root's forward, whose hook would gather the root's own parameters: the shared
    embedding, final norms, LM head), so they are gathered here for the whole generation and sharded
    again after; each block gathers itself in its own forward."""
    model.unshard()
    try:
        yield
    finally:
        model.reshard()


def clip_grad_norm_(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` over a mix of sharded (DTensor: the student's) and replicated
    (plain: the heads') gradients, which torch's foreach kernels do not take together: the norm of each
    kind, the sharded one's reduced over the ranks, then each kind scaled by the same factor."""
    grads = [p.grad for p in params if p.grad is not None]
    kinds: list[list[torch.Tensor]] = [
        [g for g in grads if isinstance(g, DTensor)],
        [g for g in grads if not isinstance(g, DTensor)],
    ]
    norms = []
    for kind in kinds:
        if kind:
            norm = torch.nn.utils.get_total_norm(kind)
            norms.append(norm.full_tensor() if isinstance(norm, DTensor) else norm)
    total = torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.tensor(0.0)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for grad in grads:
        grad.mul_(coef.item())
    return total


def full_state(
    modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """The full (unsharded) trainable tensors of each module and the optimiser's state in
    ``optimizer.state_dict()``'s own format (parameters numbered in the order of its groups), on rank 0;
    empty on the others. Collective: every rank calls it at the same point."""
    container = torch.nn.ModuleDict(modules)
    trainable = {n for n, p in container.named_parameters() if p.requires_grad}
    model: dict[str, Any] = dict(get_model_state_dict(container, options=FULL))
    optim: Any = get_optimizer_state_dict(container, optimizer, options=FULL)
    if not model:  # a rank other than 0
        return {}, {}
    tensors: dict[str, dict[str, torch.Tensor]] = {key: {} for key in modules}
    for name, tensor in model.items():
        if name in trainable:
            key, rest = name.split(".", 1)
            tensors[key][rest] = tensor
    order = [fqn for group in optim["param_groups"] for fqn in group["params"]]
    ids = {fqn: i for i, fqn in enumerate(order)}
    groups, start = [], 0
    for group in optim["param_groups"]:
        groups.append({**group, "params": list(range(start, start + len(group["params"])))})
        start += len(group["params"])
    state = {ids[fqn]: values for fqn, values in optim["state"].items()}
    return tensors, {"state": state, "param_groups": groups}


def full_model(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of the sharded ``model``'s state dict, whole, on rank 0's CPU (empty on the others),
    for ``save_pretrained``. Collective."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return dict(get_model_state_dict(model, options=options))  # type: ignore[arg-type]


def load_full_state(
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, dict[str, torch.Tensor]],
    optim_state: dict[str, Any],
) -> None:
    """The inverse of ``full_state``: full tensors (every rank read the same checkpoint) sharded into the
    sharded modules and the optimiser in place."""
    container = torch.nn.ModuleDict(modules)
    model: dict[str, Any] = {
        f"{key}.{name}": t for key, state in tensors.items() for name, t in state.items()
    }
    set_model_state_dict(container, model, options=StateDictOptions(full_state_dict=True, strict=False))
    names = {id(p): n for n, p in container.named_parameters()}
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    optim: Any = {
        "state": {order[int(i)]: values for i, values in optim_state["state"].items()},
        "param_groups": [
            {**group, "params": [order[int(i)] for i in group["params"]]}
            for group in optim_state["param_groups"]
        ],
    }
    set_optimizer_state_dict(container, optimizer, optim, options=StateDictOptions(full_state_dict=True))


def local_share(model: torch.nn.Module) -> tuple[int, int]:
    """(elements this rank holds, elements of the whole model) of ``model``'s parameters."""
    held = total = 0
    for p in model.parameters():
        held += p.to_local().numel() if isinstance(p, DTensor) else p.numel()
        total += p.numel()
    return held, total
