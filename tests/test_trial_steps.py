"""The recipe's optimiser pieces without a model zoo: gradient clipping under accumulation, one parameter
group per module with the heads' own learning rate, both groups scheduled."""

import pytest
import torch
from accelerate import Accelerator

from mmkd.schedule import warmup_cosine
from mmkd.trial import optimizer_step, param_groups

LR = 0.1


def _train(grad_accum: int, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step over (x, y) split into ``grad_accum`` equal micro-batches; returns the weight
    before and after."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1, bias=False)
    before = model.weight.detach().clone()
    accelerator = Accelerator(gradient_accumulation_steps=grad_accum, cpu=True)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    model, opt, sched = accelerator.prepare(model, opt, sched)
    for xb, yb in zip(x.chunk(grad_accum), y.chunk(grad_accum), strict=True):
        with accelerator.accumulate(model):
            accelerator.backward(torch.nn.functional.mse_loss(model(xb), yb))
            optimizer_step(accelerator, list(model.parameters()), opt, sched, max_norm=1.0)
    return before, model.weight.detach().clone()


def test_clipping_under_accumulation_sees_the_whole_steps_gradient():
    # Two halves whose gradients point different ways and are each far above the clipping norm.
    x = torch.tensor([[10.0, 0, 0], [10, 0, 0], [0, 0, 30], [0, 0, 30]])
    y = torch.tensor([[100.0], [100], [-50], [-50]])
    before, one_batch = _train(1, x, y)
    _, accumulated = _train(2, x, y)
    # The full gradient is clipped to norm 1, so plain SGD moves the weight by exactly lr.
    assert (one_batch - before).norm().item() == pytest.approx(LR, rel=1e-5)
    assert torch.allclose(accumulated, one_batch, atol=1e-6), (accumulated, one_batch)


def test_heads_get_their_own_learning_rate_and_the_schedule_scales_both_groups():
    modules = {"student": torch.nn.Linear(4, 4), "heads": torch.nn.Linear(4, 2)}
    modules["student"].bias.requires_grad_(False)  # frozen tensors stay out of the optimiser
    groups = param_groups(modules, lr=1e-3, heads_lr=5e-2)
    assert [g["lr"] for g in groups] == [1e-3, 5e-2]
    assert [len(g["params"]) for g in groups] == [1, 2]
    opt = torch.optim.AdamW(groups, lr=1e-3)
    factor = warmup_cosine(2, 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    for _ in range(5):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3 * factor(5), 5e-2 * factor(5)])
    # null = the trial's lr, as before the setting existed
    assert [g["lr"] for g in param_groups(modules, lr=1e-3, heads_lr=None)] == [1e-3, 1e-3]
