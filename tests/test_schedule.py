"""The learning-rate schedule: linear warmup to the peak, half cosine down to 0.1× the peak."""

import pytest
import torch

from mmkd.schedule import warmup_cosine


def test_warmup_then_cosine_to_a_tenth_of_the_peak():
    factor = warmup_cosine(10, 110)
    assert [factor(s) for s in (0, 5, 10)] == pytest.approx([0.0, 0.5, 1.0])
    assert factor(60) == pytest.approx(0.55)  # half-way down the cosine: (1 + 0.1) / 2
    assert factor(110) == pytest.approx(0.1)
    values = [factor(s) for s in range(10, 111)]
    assert values == sorted(values, reverse=True)


def test_a_scheduler_built_from_it_saves_and_restores_its_state():
    opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(4, 20))
    for _ in range(7):
        opt.step()
        sched.step()
    state = sched.state_dict()
    opt2 = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, warmup_cosine(4, 20))
    sched2.load_state_dict(state)
    assert sched2.last_epoch == 7 and sched2.get_last_lr() == pytest.approx(sched.get_last_lr())
