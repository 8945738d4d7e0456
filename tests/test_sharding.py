"""--strategy fsdp (FSDP2's fully_shard over torch.distributed, gloo here): the same run as DDP and
as 1 rank x the global batch on untidy input, sharded checkpoints that resume bitwise on the same
world size and within 1e-4 on another one (or under DDP), and every reader of a run reading them."""
import json
import signal
import subprocess

import pytest
import torch

from scorch.cli.export import main as export
from scorch.cli.test import main as scorch_test
from scorch.cli.train import main
from scorch.rundir import checkpoint
from scorch.rundir.layout import RunLayout
from tests.helpers import BIN, FIXTURES, base_args, env, mpirun, scorch_train, unmeasured

UNTIDY = str(FIXTURES / "untidy_dataset.py")
MLP = str(FIXTURES / "mlp_model.py")
BN = str(FIXTURES / "bn_model.py")
ADAM = ["--lr", "0.01", "--clip-grad", "0.5", "--epochs", "2"]
SGD = ["--optimizer", "sgd", "--momentum", "0", "--lr", "0.1", "--epochs", "2"]


def args(root, name, *extra, model=MLP):
    return base_args(root, name, *extra, model=model, dataset=UNTIDY)


def train(root, name, ranks, *extra, model=MLP, launcher="mpirun"):
    """A run on ``ranks`` ranks: under mpirun, torchrun or scorch's own launch (one rank in-process)."""
    if ranks == 1:
        assert main(args(root, name, *extra, model=model)) == 0
        return
    if launcher == "mpirun":
        out = scorch_train(args(root, name, *extra, model=model), np_=ranks)
    elif launcher == "torchrun":
        cmd = [str(BIN / "torchrun"), "--nproc-per-node", str(ranks), str(BIN / "scorch-train"), *args(root, name, *extra, model=model)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=300)
    else:
        out = scorch_train([*args(root, name, *extra, model=model), "--nproc-per-node", str(ranks)])
    assert out.returncode == 0, out.stderr[-4000:]


def state(run_dir, which="last"):
    files = RunLayout(run_dir).checkpoints
    return checkpoint.load(files.latest() if which == "last" else files.best_any())


def max_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def same(tmp_path_factory):
    """301 training samples, Adam with --clip-grad: 1 rank x 36; 3 ranks x 4 x accumulate 3 under
    fsdp and ddp; 2 ranks x 18 under fsdp (torchrun)."""
    root = tmp_path_factory.mktemp("same")
    train(root, "one-36", 1, "--batch-size", "36", *ADAM)
    train(root, "fsdp-3", 3, "--batch-size", "4", "--accumulate", "3", "--strategy", "fsdp", "--test", *ADAM)
    train(root, "ddp-3", 3, "--batch-size", "4", "--accumulate", "3", "--strategy", "ddp", *ADAM)
    train(root, "fsdp-2", 2, "--batch-size", "18", "--strategy", "fsdp", *ADAM, launcher="torchrun")
    train(root, "fsdp-4", 4, "--batch-size", "9", "--strategy", "fsdp", *ADAM)
    train(root, "sgd-one-36", 1, "--batch-size", "36", *SGD)
    train(root, "sgd-fsdp-2", 2, "--batch-size", "6", "--accumulate", "3", "--strategy", "fsdp", *SGD, launcher="scorch")
    return root


def test_fsdp_equals_ddp_and_one_rank_with_the_global_batch(same):
    one = state(same / "one-36")["model"]
    for name in ("fsdp-3", "ddp-3", "fsdp-2", "fsdp-4"):
        assert max_diff(one, state(same / name)["model"]) < 1e-4, name
    assert max_diff(state(same / "sgd-one-36")["model"], state(same / "sgd-fsdp-2")["model"]) < 1e-4
    # The comparison can fail: one epoch less is elsewhere.
    assert main(args(same, "short", "--batch-size", "36", *ADAM[:-1], "1")) == 0
    assert max_diff(one, state(same / "short")["model"]) > 1e-3


def test_a_sharded_checkpoint_holds_every_ranks_shards_and_the_optimizer_state(same):
    files = RunLayout(same / "fsdp-3").checkpoints
    last = files.latest()
    assert last.name == "last.dcp" and last.is_symlink() and last.resolve().name.startswith("step-")
    assert sorted(p.name for p in last.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp", "__2_0.distcp"]
    assert not files.last.exists()  # no last.pt beside it
    whole = state(same / "fsdp-3")
    ddp = torch.load(same / "ddp-3" / "checkpoints" / "last.pt", weights_only=True)
    assert whole["step"] == ddp["step"] == 18 and whole["cursor"]["world_size"] == 3
    assert whole["sharded"] == {"strategy": "fsdp", "world_size": 3}
    # The optimizer's state (by parameter name) is DDP's (by number), within the run's tolerance.
    by_name = whole["optimizer"]["state"]
    names = [n for g in whole["optimizer"]["param_groups"] for n in g["params"]]
    for i, name in enumerate(names):
        assert float(by_name[name]["step"]) == float(ddp["optimizer"]["state"][i]["step"]) == 18
        assert (by_name[name]["exp_avg"] - ddp["optimizer"]["state"][i]["exp_avg"]).abs().max() < 1e-5
    meta = json.loads((same / "fsdp-3" / "meta.json").read_text())
    assert meta["strategy"] == "fsdp" and meta["backend"] == "torch"


def test_metrics_are_exact_under_fsdp(same):
    from tests.fixtures.untidy_dataset import DataSet, DataSetIndex
    train_set = DataSet(DataSetIndex(), "train")
    exact = sum(int(train_set[i][1][0] == 0) for i in range(len(train_set))) / len(train_set)
    import csv
    with open(same / "fsdp-3" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(float(r["train/first_class"]) == pytest.approx(exact, abs=1e-7) for r in rows)


def test_readers_read_a_sharded_run(same, tmp_path, capsys):
    import scorch
    run = same / "fsdp-3"
    whole = state(run)["model"]
    loaded = scorch.load_run(run, checkpoint="last")
    assert all(torch.equal(loaded.network.state_dict()[k], whole[k]) for k in whole)
    assert loaded.checkpoint.path.name == "last.dcp"
    # scorch-test on 1 rank (in-process) and on 2 ranks (mpirun) gives the same exact metrics, and
    # so did --test on the 3 ranks that trained it.
    trained = json.loads((run / "eval" / "test-best.json").read_text())
    assert scorch_test([str(run), "--checkpoint", "best"]) == 0
    again = json.loads((run / "eval" / "test-best.json").read_text())
    assert trained["world_size"] == 3 and trained["test/loss"] == pytest.approx(again["test/loss"], rel=1e-6)
    assert scorch_test([str(run), "--checkpoint", "best", "--split", "valid"]) == 0
    one = json.loads((run / "eval" / "valid-best.json").read_text())
    out = subprocess.run([*mpirun(2), str(BIN / "scorch-test"), str(run), "--checkpoint", "best", "--split", "valid"],
                         capture_output=True, text=True, env=env(), timeout=300)
    assert out.returncode == 0, out.stderr
    two = json.loads((run / "eval" / "valid-best.json").read_text())
    assert one["world_size"] == 1 and two["world_size"] == 2
    for key in ("valid/loss", "valid/accuracy"):
        assert one[key] == pytest.approx(two[key], rel=1e-6), key
    # scorch-export writes a plain state_dict that loads without scorch.
    out_file = tmp_path / "model.pt"
    assert export([str(run), "--checkpoint", "last", "--out", str(out_file)]) == 0
    from tests.fixtures.mlp_model import Network
    net = Network()
    net.load_state_dict(torch.load(out_file, weights_only=True))
    assert all(torch.equal(net.state_dict()[k], whole[k]) for k in whole)
    assert export([str(run), "--out", str(out_file)]) == 2  # exists: refused, the file kept
    assert "exists" in capsys.readouterr().err
    assert torch.load(out_file, weights_only=True).keys() == whole.keys()


def test_frozen_modules_and_batchnorm_under_fsdp_equal_ddp(tmp_path):
    # A frozen block with its BatchNorm (eval mode, never moves) and a trainable head with one: the
    # weights and the buffers (rank 0's running statistics, as DDP keeps them) are DDP's.
    # With Socket.shard_units() returning [] the Network is the one unit: frozen and trainable
    # parameters in the same unit.
    mixed = tmp_path / "mixed_model.py"
    mixed.write_text((FIXTURES / "bn_model.py").read_text() + "\n\nSocket.shard_units = lambda self: []\n")
    train(tmp_path, "fsdp", 2, "--batch-size", "16", "--strategy", "fsdp", *SGD, model=BN)
    train(tmp_path, "mixed", 2, "--batch-size", "16", "--strategy", "fsdp", *SGD, model=str(mixed))
    train(tmp_path, "ddp", 2, "--batch-size", "16", "--strategy", "ddp", *SGD, model=BN)
    a, b = state(tmp_path / "fsdp")["model"], state(tmp_path / "ddp")["model"]
    assert max_diff(a, b) < 1e-6
    assert max_diff(state(tmp_path / "mixed")["model"], b) < 1e-6
    from tests.fixtures.bn_model import Network
    torch.manual_seed(0)
    fresh = Network().state_dict()
    assert torch.equal(a["frozen.1.running_mean"], fresh["frozen.1.running_mean"])
    assert not torch.equal(a["head.1.running_mean"], fresh["head.1.running_mean"])


def start_and_stop(cmd, run_dir):
    """Start training, wait for its first (epoch 1) sharded checkpoint, then SIGUSR1 it mid-epoch 2."""
    from tests.test_preempt import start_and_signal
    return start_and_signal(cmd, run_dir, signal.SIGUSR1, False, last="last.dcp")


def ws(root, name, *extra, noise=True):
    more = ["--workers", "2", "--set", "dataset.noise=0.1"] if noise else []
    return args(root, name, "--batch-size", "24", "--lr", "0.05", *more, *extra)


@pytest.fixture(scope="module")
def cut(tmp_path_factory):
    """fsdp on 2 ranks x 24 (301 samples): 4 epochs whole, and 4 epochs stopped by SIGUSR1 in the
    middle of epoch 2 (under mpirun), both saved sharded; with random augmentation drawn in 2
    DataLoader workers (``whole``, ``cut``) and without (``whole-plain``, ``cut-plain``: the
    augmentation of a sample depends on the world size today, the same under DDP)."""
    root = tmp_path_factory.mktemp("cut")
    for suffix, noise in (("", True), ("-plain", False)):
        out = scorch_train(ws(root, f"whole{suffix}", "--epochs", "4", "--strategy", "fsdp", noise=noise), np_=2)
        assert out.returncode == 0, out.stderr
        cmd = [*mpirun(2), str(BIN / "scorch-train"), *ws(root, f"cut{suffix}", "--epochs", "4", "--strategy", "fsdp", noise=noise)]
        code, err = start_and_stop(cmd, root / f"cut{suffix}")
        assert code == 3, err
        saved = checkpoint.load(root / f"cut{suffix}" / "checkpoints" / "last.dcp", whole=False)
        assert 0 < saved["cursor"]["samples"] < 301, "the stop was not mid-epoch"
    return root


def copy_run(src, dst):
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def test_a_mid_epoch_resume_of_a_sharded_run_is_bitwise_on_the_same_world_size(cut, tmp_path):
    copy_run(cut / "cut", tmp_path / "cut")
    out = scorch_train(ws(tmp_path, "cut", "--epochs", "4", "--resume"), np_=2)
    assert out.returncode == 0, out.stderr
    a, b = state(cut / "whole"), state(tmp_path / "cut")
    assert a["step"] == b["step"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for name, s in a["optimizer"]["state"].items():
        assert torch.equal(s["exp_avg"], b["optimizer"]["state"][name]["exp_avg"]), name
        assert torch.equal(s["exp_avg_sq"], b["optimizer"]["state"][name]["exp_avg_sq"]), name
    strip = lambda rows: [unmeasured(r) for r in rows]  # noqa: E731
    import csv
    with open(cut / "whole" / "history.csv") as f, open(tmp_path / "cut" / "history.csv") as g:
        assert strip(csv.DictReader(f)) == strip(csv.DictReader(g))


@pytest.mark.parametrize("ranks, strategy", [(1, "fsdp"), (3, "fsdp"), (2, "ddp")])
def test_a_sharded_run_resumes_on_another_world_size_or_unsharded(cut, tmp_path, ranks, strategy):
    copy_run(cut / "cut-plain", tmp_path / "cut")
    train(tmp_path, "cut", ranks, *ws(tmp_path, "cut", noise=False)[len(args(tmp_path, "cut")):], "--epochs", "4",
          "--resume", "--strategy", strategy)
    whole, end = state(cut / "whole-plain"), state(tmp_path / "cut")
    assert end["step"] == whole["step"] and end["cursor"]["global_batch"] == 48 and end["cursor"]["world_size"] == ranks
    assert max_diff(whole["model"], end["model"]) < 1e-4
    sharded = (tmp_path / "cut" / "checkpoints" / "last.dcp").exists()
    assert sharded == (strategy == "fsdp" and ranks > 1)  # 1 rank trains whole; DDP writes last.pt
    assert (tmp_path / "cut" / "checkpoints" / "last.pt").exists() != sharded  # one kind at a time


def test_an_epoch_boundary_resume_of_a_sharded_run_is_bitwise(cut, tmp_path):
    out = scorch_train(ws(tmp_path, "split", "--epochs", "2", "--strategy", "fsdp"), np_=2)
    assert out.returncode == 0, out.stderr
    out = scorch_train(ws(tmp_path, "split", "--epochs", "4", "--resume"), np_=2)
    assert out.returncode == 0, out.stderr
    a, b = state(cut / "whole"), state(tmp_path / "split")
    assert a["step"] == b["step"] and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_scorch_report_reads_a_sharded_run(same, tmp_path, capsys):
    from scorch.cli.report import main as report
    assert report([str(same / "fsdp-3"), str(same / "ddp-3"), "--out", str(tmp_path / "report.png")]) == 0
    out = capsys.readouterr().out
    assert "fsdp-3" in out and "ddp-3" in out


def test_a_ddp_run_resumes_sharded(tmp_path):
    out = scorch_train(ws(tmp_path, "whole", "--epochs", "3", "--strategy", "ddp"), np_=2)
    assert out.returncode == 0, out.stderr
    out = scorch_train(ws(tmp_path, "switch", "--epochs", "1", "--strategy", "ddp"), np_=2)
    assert out.returncode == 0, out.stderr
    out = scorch_train(ws(tmp_path, "switch", "--epochs", "3", "--resume", "--strategy", "fsdp"), np_=2)
    assert out.returncode == 0, out.stderr
    assert max_diff(state(tmp_path / "whole")["model"], state(tmp_path / "switch")["model"]) < 1e-4
    assert (tmp_path / "switch" / "checkpoints" / "last.dcp").exists()


def test_keep_checkpoints_keeps_sharded_directories_and_best(tmp_path):
    train(tmp_path, "keep", 2, "--batch-size", "16", "--strategy", "fsdp", "--keep-checkpoints", "2", *SGD[:-1], "4",
          launcher="scorch")
    files = RunLayout(tmp_path / "keep").checkpoints
    kept = [p.name for p in files.kept()]
    best = files.best_sharded.resolve().name
    assert kept[:2] == ["step-000000040.dcp", "step-000000030.dcp"]
    assert set(kept) == {"step-000000040.dcp", "step-000000030.dcp", best}
    assert files.latest().resolve().name == "step-000000040.dcp"
    assert not list(files.dir.glob(".*.tmp"))


def test_a_save_that_fails_leaves_the_previous_checkpoint(tmp_path):
    # The shards of a new checkpoint go to a temporary directory; a save that fails half-way (here
    # after its first file) leaves last.dcp pointing at the previous, complete one.
    train(tmp_path, "run", 2, "--batch-size", "16", "--strategy", "fsdp", *SGD, launcher="scorch")
    files = RunLayout(tmp_path / "run").checkpoints
    before = files.latest().resolve()
    from scorch.distributed.backends.base import Backend
    from scorch.launch import LaunchInfo
    backend = Backend(LaunchInfo("none", 0, 1, 0, 1, 0), torch.device("cpu"))

    def half(path):
        (path / "__0_0.distcp").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        checkpoint.CheckpointDir(files.dir).write_sharded(backend, half, {"epoch": 3, "step": 30}, 30, True)
    assert files.latest().resolve() == before and files.best_any().resolve() == before
    assert checkpoint.CheckpointDir(files.dir).load_latest()["step"] == 20
    assert not any(p.name.startswith("step-000000030") for p in files.kept())
    # An incomplete step directory (a save killed before its metadata) is skipped, saying why.
    broken = files.dir / "step-000000050.dcp"
    broken.mkdir()
    assert checkpoint.CheckpointDir(files.dir, keep=3).load_latest()["step"] == 20
    with pytest.raises(Exception, match="incomplete"):
        checkpoint.load(broken)


@pytest.mark.parametrize("flags, words", [
    (["--backend", "horovod", "--strategy", "fsdp"], "--strategy fsdp runs on torch.distributed, not Horovod"),
    (["--strategy", "hsdp", "--amp", "fp16"], "--amp fp16 with --strategy hsdp"),
    (["--activation-checkpointing"], "--activation-checkpointing checkpoints the shard units"),
])
def test_sharded_settings_that_cannot_work_are_refused_in_one_line(tmp_path, capsys, flags, words):
    assert main(args(tmp_path, "bad", *flags)) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_unused_parameters_are_refused_under_fsdp_on_every_rank(tmp_path):
    out = scorch_train(args(tmp_path, "unused", "--strategy", "fsdp", "--epochs", "1", model=str(FIXTURES / "unused_model.py")),
                       np_=2)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if "fully_shard cannot reduce" in line]
    assert len(lines) == 1, out.stderr


def test_shard_units_from_the_model_file_and_activation_checkpointing(tmp_path):
    # Socket.shard_units() names the units; --activation-checkpointing recomputes their forwards:
    # the same run within 1e-5 (the same arithmetic, done again in the backward pass).
    model = tmp_path / "units_model.py"
    model.write_text((FIXTURES / "mlp_model.py").read_text() + "\n\ndef _units(self):\n    return [m for m in self.model.modules() "
                     "if isinstance(m, nn.Linear)]\n\n\nSocket.shard_units = _units\n")
    train(tmp_path, "units", 2, "--batch-size", "16", "--strategy", "fsdp", *ADAM, model=str(model))
    train(tmp_path, "ac", 2, "--batch-size", "16", "--strategy", "fsdp", "--activation-checkpointing", *ADAM,
          model=str(model))
    train(tmp_path, "default", 2, "--batch-size", "16", "--strategy", "fsdp", *ADAM)
    a, b, c = (state(tmp_path / n)["model"] for n in ("units", "ac", "default"))
    assert max_diff(a, c) < 1e-5 and max_diff(a, b) < 1e-5


def test_bf16_under_fsdp_is_ddps_bf16(tmp_path):
    # --amp bf16: FSDP2's policy gathers the parameters in bfloat16 and reduces gradients in float32,
    # beside autocast: the same arithmetic as DDP under autocast.
    train(tmp_path, "fsdp", 2, "--batch-size", "16", "--strategy", "fsdp", "--amp", "bf16", *ADAM, launcher="scorch")
    train(tmp_path, "ddp", 2, "--batch-size", "16", "--strategy", "ddp", "--amp", "bf16", *ADAM, launcher="scorch")
    train(tmp_path, "fp32", 2, "--batch-size", "16", "--strategy", "ddp", *ADAM, launcher="scorch")
    a, b, c = (state(tmp_path / n)["model"] for n in ("fsdp", "ddp", "fp32"))
    assert max_diff(a, b) < 1e-4
    assert max_diff(a, c) > 1e-4  # bf16 did change the arithmetic


def test_the_default_shard_units_are_top_level_children_and_repeated_blocks():
    from torch import nn

    from scorch.strategies.fsdp import default_units

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn, self.mlp = nn.Linear(8, 8), nn.Linear(8, 8)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 8)
            self.blocks = nn.ModuleList([Block(), Block(), Block()])
            self.act = nn.ReLU()  # no parameters: no unit
            self.head = nn.Linear(8, 2)

    net = Net()
    units = default_units(net)
    assert [id(u) for u in units[:3]] == [id(b) for b in net.blocks]  # innermost first
    assert {id(u) for u in units[3:]} == {id(net.embed), id(net.blocks), id(net.head)}
    assert all(u is not net.act for u in units)


def test_split_metrics_of_a_sharded_run_are_those_of_ddp(tmp_path):
    # Socket.split_metrics sees the whole valid split in dataset order: 37 samples over 3 ranks in
    # batches of 4 are 4, 3 and 3 batches (the sharded forward gathers from every rank: ranks 1 and 2
    # run a stand-in forward to keep step with rank 0, which counts for nothing).
    import csv
    split = str(FIXTURES / "split_model.py")
    for strategy in ("fsdp", "ddp"):
        train(tmp_path, strategy, 3, "--batch-size", "4", "--strategy", strategy, *SGD, model=split, launcher="scorch")
    rows = {}
    for strategy in ("fsdp", "ddp"):
        with open(tmp_path / strategy / "history.csv") as f:
            rows[strategy] = list(csv.DictReader(f))
    names = [k for k in rows["ddp"][0] if k.startswith("valid/") and k != "valid/loss"]
    assert len(names) >= 2, names
    for a, b in zip(rows["fsdp"], rows["ddp"]):
        for name in names:
            assert float(a[name]) == pytest.approx(float(b[name]), abs=1e-6), name


def test_a_valid_split_smaller_than_the_world_size_under_fsdp(tmp_path):
    # 2 valid samples on 3 ranks: rank 2 has none and keeps step on a stand-in sample.
    from tests.fixtures.untidy_dataset import DataSet, DataSetIndex
    train(tmp_path, "tiny-valid", 3, "--batch-size", "4", "--strategy", "fsdp", "--set", "dataset.n_valid=2", *SGD,
          launcher="scorch")
    valid = DataSet(DataSetIndex(n_valid=2), "valid")
    exact = sum(int(valid[i][1][0] == 0) for i in range(2)) / 2
    import csv
    with open(tmp_path / "tiny-valid" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(float(r["valid/first_class"]) == pytest.approx(exact, abs=1e-7) for r in rows)


def test_a_sharded_run_of_an_optimizer_without_state_resumes_on_one_rank(same, tmp_path):
    # Plain SGD keeps no state: the sharded checkpoint holds its parameter groups alone.
    copy_run(same / "sgd-fsdp-2", tmp_path / "sgd")
    assert main(args(tmp_path, "sgd", "--epochs", "3", "--resume")) == 0
    end = torch.load(tmp_path / "sgd" / "checkpoints" / "last.pt", weights_only=True)
    assert end["epoch"] == 3 and end["cursor"]["world_size"] == 1 and end["optimizer"]["state"] == {}


def test_compile_under_fsdp_is_the_same_run(same, tmp_path):
    # --compile (inductor on the CPU) of the sharded Network: the weights of the uncompiled run.
    train(tmp_path, "compiled", 2, "--batch-size", "18", "--strategy", "fsdp", "--compile", *ADAM, launcher="scorch")
    assert max_diff(state(same / "fsdp-2")["model"], state(tmp_path / "compiled")["model"]) < 1e-5
    meta = json.loads((tmp_path / "compiled" / "meta.json").read_text())
    assert meta["compile"]["graphs"] >= 1
