"""LR schedules: pure functions of the epoch, applied to every parameter group."""
import pytest
import torch

from scorch.config import TrainConfig
from scorch.errors import ScorchError
from scorch.training import schedule


@pytest.mark.parametrize("sched, warmup, epochs, expected", [
    (None, 0, 3, [0.1, 0.1, 0.1]),
    ("constant", 0, 2, [0.1, 0.1]),
    ([[2, 0.5], [3, 0.05]], 0, 5, [0.5, 0.5, 0.05, 0.05, 0.05]),  # absolute rates; the last one after
    ("cosine", 0, 5, [0.1, 0.1 * (2 + 2 ** 0.5) / 4, 0.05, 0.1 * (2 - 2 ** 0.5) / 4, 0.0]),  # 0 at the last epoch
    ("cosine", 0, 1, [0.1]),
    ("cosine", 2, 5, [0.1 / 3, 0.2 / 3, 0.1, 0.05, 0.0]),  # warm-up, then base to 0
    (None, 3, 4, [0.025, 0.05, 0.075, 0.1]),
])
def test_lr_at(sched, warmup, epochs, expected):
    got = [schedule.lr_at(e, 0.1, sched, warmup, epochs) for e in range(1, epochs + 1)]
    assert got == pytest.approx(expected, abs=1e-12)


def groups(*lrs):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=lrs[0])


def test_apply_scales_every_group_from_its_initial_rate():
    opt = groups(0.1, 0.01)
    schedule.apply(opt, 4, "cosine", 0, 4, base_lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.0, 0.0])
    schedule.apply(opt, 1, [[1, 0.05]], 0, 4, base_lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.005])


def test_a_list_schedule_is_absolute_for_the_model_files_own_optimizer():
    opt = groups(0.5, 0.05)  # base None: the optimizer's own first group is the base
    schedule.apply(opt, 1, [[1, 0.2]], 0, 2, base_lr=None)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.2, 0.02])
    schedule.apply(opt, 2, None, 0, 2, base_lr=None)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5, 0.05])


@pytest.mark.parametrize("changes, words", [
    ({"lr_schedule": "cosine"}, "--set lr_schedule"),
    ({"warmup_epochs": 2}, "--set warmup_epochs"),
])
def test_schedules_and_warmup_are_refused_beside_a_socket_scheduler(changes, words):
    config = TrainConfig(model="m.py", dataset="d.py", **changes)
    with pytest.raises(ScorchError, match=words):
        schedule.check_owner(config, socket_scheduler=True)
    schedule.check_owner(config, socket_scheduler=False)
