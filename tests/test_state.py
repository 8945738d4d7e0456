"""Unit tests of the loop's saved state: LoopState, Cursor, MetricTotals, TrainingState."""
import math

import pytest
import torch

from scorch.errors import ScorchError
from scorch.rundir import checkpoint
from scorch.training.state import Cursor, LoopState, MetricTotals

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("mode, values, improved, best, best_epoch, bad", [
    ("min", [3.0, 2.0, 2.5, 1.0], [True, True, False, True], 1.0, 4, 0),
    ("max", [0.1, 0.5, 0.4, 0.4], [True, True, False, False], 0.5, 2, 2),
    ("min", [NAN, 2.0, 3.0], [False, True, False], 2.0, 2, 1),  # a NaN first is never the best
    ("max", [0.5, NAN, INF, 0.6], [True, False, False, True], 0.6, 4, 0),  # nor later; inf neither
    ("min", [NAN, NAN], [False, False], None, 0, 2),  # counts as no improvement (patience)
    ("min", [2.0, 2.0], [True, False], 2.0, 1, 1),  # equal is no improvement
])
def test_loop_state_records_the_best_and_epochs_without_improvement(mode, values, improved, best, best_epoch, bad):
    state = LoopState()
    assert [state.record(v, e, mode) for e, v in enumerate(values, start=1)] == improved
    assert (state.best, state.best_epoch, state.bad_epochs) == (best, best_epoch, bad)
    again = LoopState()
    again.load_state_dict(state.state_dict())
    assert again == state


@pytest.mark.parametrize("fields", [
    {}, {"epoch": 2, "step": 40, "samples": 96}, {"epoch": 1, "step": 9, "trained": True},
    {"epoch": 3, "step": 30, "global_batch": 32, "world_size": 2, "length": 301},
])
def test_cursor_round_trips(fields):
    cursor = Cursor(**fields)
    again = Cursor()
    again.load_state_dict(cursor.state_dict())
    assert again == cursor


def test_cursor_loads_an_older_state_with_defaults():
    cursor = Cursor()
    cursor.load_state_dict({"epoch": 2, "step": 8})
    assert cursor == Cursor(epoch=2, step=8)


def totals(*batches):
    t = MetricTotals(["acc", "n"], torch.device("cpu"), "m.py: Socket.metrics")
    for n, loss, acc, other in batches:
        t.add(n, torch.tensor(loss), {"acc": torch.tensor(acc), "n": other})
    return t


def test_metric_totals_are_sample_weighted_means_with_tensors_and_numbers():
    t = totals((4, 1.0, 0.5, 2.0), (1, 6.0, 1.0, 7.0))
    means = t.means(t.packed(), "train")
    assert means == pytest.approx({"train/loss": 2.0, "train/acc": 0.6, "train/n": 3.0})
    assert t.means(totals().packed(), "valid") == {}  # no samples: no means


def test_metric_totals_round_trip_and_absorb_other_ranks():
    a, b = totals((4, 1.0, 0.5, 2.0)), totals((1, 6.0, 1.0, 7.0))
    again = totals()
    again.load_state_dict(a.state_dict())
    assert torch.equal(again.packed(), a.packed())
    both = totals()
    both.absorb([a.state_dict(), b.state_dict()])
    assert torch.allclose(both.packed(), a.packed() + b.packed())


def test_metric_totals_refuse_other_names():
    t = totals()
    with pytest.raises(ScorchError, match=r"returned \['acc'\], expected the same names as before"):
        t.add(1, torch.tensor(1.0), {"acc": 1.0})


def training_state(net):
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    return checkpoint.TrainingState(net, opt, None, torch.amp.GradScaler("cpu", enabled=False), LoopState(),
                                    Cursor(epoch=1, step=3))


def test_training_state_saves_and_restores_every_object():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    state = training_state(net)
    net(torch.randn(4, 3)).sum().backward()
    state.optimizer.step()
    state.loop.record(0.5, 1, "min")
    saved = state.state_dict()
    assert saved["epoch"] == 1 and saved["step"] == 3 and set(saved) >= {"model", "optimizer", "loop", "cursor"}
    other = training_state(torch.nn.Linear(3, 2))
    other.load_state_dict(saved, "m.py: Network")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), other.network.state_dict().values()))
    assert other.loop == state.loop and other.cursor == state.cursor
    assert other.optimizer.state_dict()["state"][0]["momentum_buffer"].equal(saved["optimizer"]["state"][0]["momentum_buffer"])


def test_training_state_refuses_non_finite_weights():
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.bias[0] = math.nan
    with pytest.raises(checkpoint.NonFiniteWeights, match="bias"):
        training_state(net).state_dict()


@pytest.mark.parametrize("other, words", [
    (torch.nn.Linear(3, 4), ["'weight' has shape (2, 3) in the checkpoint, (4, 3) in the Network"]),
    (torch.nn.Sequential(torch.nn.Linear(3, 2)), ["it has no '0.weight'"]),
    (torch.nn.Linear(3, 2, bias=False), ["'bias' is in the checkpoint but not in the Network"]),
])
def test_a_checkpoint_that_does_not_fit_names_the_first_key(other, words):
    saved = training_state(torch.nn.Linear(3, 2)).state_dict()
    with pytest.raises(ScorchError) as err:
        training_state(other).load_state_dict(saved, "m.py: Network")
    assert all(w in str(err.value) for w in words) and "m.py: Network" in str(err.value)
