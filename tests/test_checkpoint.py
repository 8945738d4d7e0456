"""CheckpointDir: kept checkpoints, last.pt/best.pt links, falling back past a damaged last.pt."""
import pytest
import torch

from scorch.errors import ScorchError
from scorch.rundir import checkpoint


def state(step):
    return {"model": {"w": torch.tensor([float(step)])}, "epoch": step, "step": step}


@pytest.mark.parametrize("keep, steps, best_at, kept", [
    (1, [1, 2, 3], {2}, []),
    (2, [1, 2, 3], {1}, [3, 2]),
    (3, [10, 20], {10, 20}, [20, 10]),
])
def test_write_keeps_the_newest_and_links_last_and_best(tmp_path, keep, steps, best_at, kept):
    d = checkpoint.CheckpointDir(tmp_path, keep)
    for step in steps:
        d.write(state(step), step, step in best_at)
    assert [int(p.stem.split("-")[1]) for p in d.kept()] == kept
    assert checkpoint.load(d.last)["step"] == steps[-1]
    assert checkpoint.load(d.best)["step"] == max(best_at)
    if kept:
        assert d.last.samefile(d.kept()[0])  # written once, linked


@pytest.mark.parametrize("damage", [b"", b"not a checkpoint", None])
def test_load_latest_falls_back_to_the_newest_good_checkpoint(tmp_path, damage):
    d = checkpoint.CheckpointDir(tmp_path, 3)
    for step in (1, 2, 3):
        d.write(state(step), step, False)
    newest = d.kept()[0]
    newest.unlink()  # break the link, then damage last.pt alone
    d.last.unlink()
    if damage is not None:
        d.last.write_bytes(damage)
    assert d.load_latest()["step"] == 2


def test_load_latest_without_any_good_checkpoint_is_one_line(tmp_path):
    d = checkpoint.CheckpointDir(tmp_path, 1)
    d.last.write_bytes(b"garbage")
    with pytest.raises(ScorchError, match=r"last\.pt is truncated or corrupt"):
        d.load_latest()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_finite_finds_any_nan_or_inf_in_one_pass(dtype):
    from scorch.rundir.checkpoint import finite
    t = torch.randn(1000).to(dtype)
    assert finite(t) and finite(torch.empty(0, dtype=dtype)) and finite(t.reshape(10, 100))
    for bad in (float("nan"), float("inf"), -float("inf")):
        for where in (0, 517, 999):
            u = t.clone()
            u[where] = bad
            assert not finite(u), (bad, where)
