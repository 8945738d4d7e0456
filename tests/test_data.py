"""The training loader's batches: sharding, the mid-epoch skip, and per-batch worker seeds."""
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


def epoch(loader, epoch_no, skip=0):
    data.set_epoch(loader, epoch_no, seed=3, rank=1, skip_batches=skip)
    return [(x.tolist(), y.tolist()) for (x,), (y,) in loader]


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 3 workers on 2 cores
def test_batches_do_not_depend_on_the_number_of_workers_or_a_mid_epoch_start():
    loaders = {w: data.train_loader(Noisy(), 4, rank=1, world_size=2, seed=3, workers=w, pin_memory=False, where="t")
               for w in (1, 3)}
    full = epoch(loaders[1], 2)
    assert sum(len(x) for x, _ in full) == 25 and len(full) == len(loaders[1]) == 7
    assert epoch(loaders[3], 2) == full  # 3 workers load the same batches with the same draws
    assert epoch(loaders[3], 2, skip=4) == full[4:]  # a restart after 4 batches: the rest, same draws
    assert epoch(loaders[1], 3) != full  # another epoch: another shuffle and other draws
    draws = [y for _, y in full]
    assert len({tuple(d) for d in draws}) == len(draws)  # every batch has its own seed


def test_main_process_loading_leaves_the_global_rng_alone():
    loader = data.train_loader(Noisy(), 4, rank=0, world_size=1, seed=3, workers=0, pin_memory=False, where="t")
    data.set_epoch(loader, 1, seed=3, rank=0)
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
    loader = data.train_loader(Batched(), 8, rank=0, world_size=1, seed=3, workers=1, pin_memory=False, where="t")
    got = epoch(loader, 1)
    assert sorted(i for x, _ in got for i in x) == list(range(50))
