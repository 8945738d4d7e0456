"""The training loader: epoch plans (every sample once, the same slots on any world size),
per-batch worker seeds, and the user's own batched loading."""
import itertools

import pytest
import torch

from scorch import data
from tests.helpers import FIXTURES, base_args, scorch_train, weights


class Noisy:
    """Items are (index, a draw from torch's global RNG): what a random augmentation sees."""

    def __len__(self):
        return 50

    def __getitem__(self, i):
        return [torch.tensor(i)], [torch.rand(())]


def plans(n, global_batch, batch, world, epoch=1, start=0):
    return [data.EpochPlan(n, global_batch, batch, r, world, seed=3, epoch=epoch, start=start) for r in range(world)]


@pytest.mark.parametrize("n, batch, world, accumulate", [
    (301, 16, 2, 1), (301, 8, 2, 2), (64, 8, 1, 3), (37, 4, 3, 1), (5, 4, 3, 2), (2, 1, 4, 1), (96, 32, 1, 1),
])
def test_every_sample_is_trained_once_per_epoch_and_each_step_weighs_its_samples(n, batch, world, accumulate):
    g = batch * world * accumulate
    ps = plans(n, g, batch, world)
    assert len({p.steps for p in ps}) == 1 and len({len(p.slots) for p in ps}) == 1  # every rank runs every micro-step
    real = sorted(i for p in ps for s in p.slots if s.count for i in s.indices)
    assert real == list(range(n))  # no sample twice, none left out, no padding
    for step in range(ps[0].steps):
        slots = [s for p in ps for s in p.slots[step * accumulate:(step + 1) * accumulate]]
        samples = sum(s.count for s in slots)
        assert samples == min(g, n - step * g)
        # DDP/Horovod average over the ranks, and a slot's loss is its samples' mean: with the weight, every
        # sample of the step counts 1/samples in the step's gradient, wherever it was trained.
        assert all(s.weight / world / s.count == pytest.approx(1 / samples) for s in slots if s.count)
        assert all(s.weight == 0 for s in slots if not s.count)
    assert all(s.last == (k % accumulate == accumulate - 1) for p in ps for k, s in enumerate(p.slots))


def test_two_ranks_train_the_slots_of_one_rank_that_accumulates_two():
    two, one = plans(301, 32, 16, 2), plans(301, 32, 16, 1)[0]
    assert one.accumulate == 2 and two[0].accumulate == 1
    interleaved = [s for pair in zip(two[0].slots, two[1].slots) for s in pair]
    assert [(s.indices, s.count) for s in interleaved] == [(s.indices, s.count) for s in one.slots]
    assert [s.weight / 2 for s in interleaved] == pytest.approx([s.weight for s in one.slots])


def test_the_epoch_order_depends_on_seed_and_epoch_not_on_the_world_size():
    assert data.epoch_order(50, 3, 1) != data.epoch_order(50, 3, 2)
    assert data.epoch_order(50, 3, 1) != data.epoch_order(50, 4, 1)
    resumed = plans(50, 8, 4, 2, start=16)  # two steps done
    whole = plans(50, 8, 4, 2)
    assert [p.slots[2:] for p in whole] == [p.slots for p in resumed]  # one slot per rank and step
    assert whole[0].samples_after(2) == 16 and whole[0].samples_after(99) == 50


def epoch(loader, plan):
    data.set_plan(loader, plan)
    return [(x.tolist(), y.tolist()) for (x,), (y,) in loader]


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 3 workers on 2 cores
def test_batches_do_not_depend_on_the_number_of_workers_or_a_mid_epoch_start():
    loaders = {w: data.train_loader(Noisy(), workers=w, pin_memory=False, where="t") for w in (1, 3)}
    full = epoch(loaders[1], data.EpochPlan(50, 8, 4, 1, 2, seed=3, epoch=2))
    assert sum(len(x) for x, _ in full) == 25 and len(full) == 7
    assert epoch(loaders[3], data.EpochPlan(50, 8, 4, 1, 2, seed=3, epoch=2)) == full  # same batches, same draws
    later = epoch(loaders[3], data.EpochPlan(50, 8, 4, 1, 2, seed=3, epoch=2, start=32))  # 4 steps were done
    assert later == full[4:]
    assert epoch(loaders[1], data.EpochPlan(50, 8, 4, 1, 2, seed=3, epoch=3)) != full  # another epoch
    draws = [y for _, y in full]
    assert len({tuple(d) for d in draws}) == len(draws)  # every batch has its own seed


def test_worker_draws_are_the_same_on_one_rank_accumulating_and_two_ranks():
    loader = data.train_loader(Noisy(), workers=1, pin_memory=False, where="t")
    one = epoch(loader, data.EpochPlan(50, 8, 4, 0, 1, seed=3, epoch=1))
    two = [epoch(loader, data.EpochPlan(50, 8, 4, r, 2, seed=3, epoch=1)) for r in range(2)]
    assert one == list(itertools.chain(*zip(*two)))


def test_main_process_loading_leaves_the_global_rng_alone():
    loader = data.train_loader(Noisy(), workers=0, pin_memory=False, where="t")
    plan = data.EpochPlan(50, 4, 4, 0, 1, seed=3, epoch=1)
    data.set_plan(loader, plan)
    torch.manual_seed(11)
    got = torch.cat([y for _, (y,) in loader])
    torch.manual_seed(11)
    assert torch.equal(got, torch.rand(50))  # items drew from the global RNG, in order, unseeded


def test_training_with_two_or_three_workers_gives_the_same_weights(tmp_path):
    def run(name, workers):
        out = scorch_train(base_args(tmp_path, name, "--epochs", "2", "--batch-size", "8", "--workers", workers,
                                     model=str(FIXTURES / "dropout_model.py"), dataset=str(FIXTURES / "noisy_dataset.py")))
        assert out.returncode == 0, out.stderr
        return weights(tmp_path / name)

    a, b = run("two", "2"), run("three", "3")
    assert all(torch.equal(a[k], b[k]) for k in a)


class Batched(Noisy):
    """Loads a batch at once; scorch must call this, not __getitem__ item by item."""

    def __getitem__(self, i):
        raise AssertionError("__getitem__ called although __getitems__ exists")

    def __getitems__(self, indices):
        return [([torch.tensor(i)], [torch.tensor(-1.0)]) for i in indices]


def test_a_dataset_with_its_own_getitems_loads_whole_batches():
    loader = data.train_loader(Batched(), workers=1, pin_memory=False, where="t")
    got = epoch(loader, data.EpochPlan(50, 8, 8, 0, 1, seed=3, epoch=1))
    assert sorted(i for x, _ in got for i in x) == list(range(50))
