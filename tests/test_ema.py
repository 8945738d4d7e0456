"""--ema DECAY: the moving average of the weights is updated once per optimizer step, saved and
resumed exactly (1 rank; 2 ranks under mpirun with torch.distributed and with Horovod; 2 ranks -> 1),
used by validation (the raw weights back bitwise after it), scorch-test, load_run and scorch-export."""
import json
import shutil

import pytest
import torch

from scorch.callbacks.ema import EMA
from scorch.cli.export import main as export_main
from scorch.cli.test import main as scorch_test_main
from scorch.cli.train import main
from scorch.rundir.load_run import load_run
from tests.helpers import FIXTURES, base_args, scorch_train

# BatchNorm (one block frozen), 301 samples, accumulation 3 (a short last window), augmentation from the global RNG
COMMON = ["--batch-size", "8", "--accumulate", "3", "--lr", "0.05", "--workers", "0", "--set", "dataset.noise=0.1",
          "--epochs", "2"]
MODEL, DATASET = str(FIXTURES / "bn_model.py"), str(FIXTURES / "untidy_dataset.py")


def args(root, name, *extra, noise=True, model=MODEL):
    common = COMMON if noise else [a for a in COMMON if a not in ("--set", "dataset.noise=0.1")]
    return base_args(root, name, *common, *extra, model=model, dataset=DATASET)


def ckpt(run_dir, which="last.pt"):
    return torch.load(run_dir / "checkpoints" / which, weights_only=True)


def history(run_dir):
    import csv
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def averages_equal(a, b, tol=None):
    ea, eb = ckpt(a)["callbacks"]["ema"], ckpt(b)["callbacks"]["ema"]
    assert ea["updates"] == eb["updates"]
    for kind in ("params", "buffers"):
        assert list(ea[kind]) == list(eb[kind])
        for k in ea[kind]:
            if tol is None:
                assert torch.equal(ea[kind][k], eb[kind][k]), k  # bitwise
            else:
                assert torch.allclose(ea[kind][k], eb[kind][k], atol=tol, rtol=0), k


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [["--ema", "0"], ["--ema", "1"], ["--ema", "1.5"], ["--ema", "-0.1"], ["--ema", "nan"],
                                   ["--ema", "x"], ["--ema", "0.9", "--ema-eval", "avg"],
                                   ["--ema", "0.9", "--strategy", "fsdp"], ["--ema-eval", "raw"]])
def test_bad_ema_values_exit_2_with_one_line(tmp_path, capsys, extra):
    capsys.readouterr()
    assert main(args(tmp_path, "bad", *extra)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scorch-train: error: ") and "--ema" in lines[0], lines
    assert not (tmp_path / "bad").exists()


# --- the update: once per step the optimizer took ---------------------------------------------

def test_a_step_the_optimizer_did_not_take_does_not_update_the_average():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    ema = EMA(net, 0.5, [opt])
    start = [t.clone() for t in ema.average]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    scaler.scale(net(torch.randn(4, 3)).sum()).backward()
    ema.on_step_end(None)  # no optimizer step yet
    assert ema.updates == 0 and all(torch.equal(a, b) for a, b in zip(ema.average, start))
    net[0].weight.grad.fill_(float("inf"))  # an AMP overflow: the scaler skips the optimizer's step
    scaler.step(opt)
    scaler.update()
    ema.on_step_end(None)
    assert ema.updates == 0
    opt.zero_grad()
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    ema.on_step_end(None)
    assert ema.updates == 1
    weight = net[0].weight.detach()
    assert torch.equal(ema.average[0], torch.lerp(start[0], weight, 0.5))
    raw = {k: v.clone() for k, v in net.state_dict().items()}
    with ema.swapped():
        assert torch.equal(net[0].weight, ema.average[0])
    assert all(torch.equal(raw[k], v) for k, v in net.state_dict().items())  # bitwise back


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    """One run without --ema, one with, one with --ema-eval raw."""
    root = tmp_path_factory.mktemp("ema")
    assert main(args(root, "plain")) == 0
    assert main(args(root, "ema", "--ema", "0.8")) == 0
    assert main(args(root, "emaraw", "--ema", "0.8", "--ema-eval", "raw")) == 0
    return root


def test_the_average_is_updated_once_per_optimizer_step_with_accumulation(trio):
    last = ckpt(trio / "ema")
    steps = 2 * -(-301 // 24)  # 13 steps of 24 samples (3 micro-batches of 8) per epoch
    assert last["step"] == steps and last["callbacks"]["ema"]["updates"] == steps
    assert last["callbacks"]["ema"]["decay"] == 0.8
    assert sorted(last["callbacks"]["ema"]["buffers"]) == ["frozen.1.running_mean", "frozen.1.running_var",
                                                           "head.1.running_mean", "head.1.running_var"]
    assert "frozen.0.weight" not in last["callbacks"]["ema"]["params"]  # frozen: its raw value is its average


def test_validation_uses_the_average_and_gives_the_raw_weights_back_bitwise(trio):
    plain, ema, emaraw = (ckpt(trio / n) for n in ("plain", "ema", "emaraw"))
    for k in plain["model"]:  # the same training, bitwise: validating the average changed no raw weight or buffer
        assert torch.equal(plain["model"][k], ema["model"][k]) and torch.equal(plain["model"][k], emaraw["model"][k]), k
    hp, he, hr = (history(trio / n) for n in ("plain", "ema", "emaraw"))
    assert [r["train/loss"] for r in hp] == [r["train/loss"] for r in he] == [r["train/loss"] for r in hr]
    assert [r["valid/loss"] for r in hr] == [r["valid/loss"] for r in hp]  # --ema-eval raw: the raw metric
    assert all(a["valid/loss"] != b["valid/loss"] for a, b in zip(he, hp))  # the average's metric


def test_scorch_test_load_run_and_export_use_the_average_unless_raw(trio, capsys):
    run = trio / "ema"
    last = ckpt(run)
    assert scorch_test_main([str(run), "--split", "valid", "--checkpoint", "last"]) == 0
    averaged = json.loads((run / "eval" / "valid-last.json").read_text())
    assert averaged["weights"] == "ema"
    assert averaged["valid/loss"] == pytest.approx(float(history(run)[-1]["valid/loss"]), rel=1e-6)
    assert scorch_test_main([str(run), "--split", "valid", "--checkpoint", "last", "--raw"]) == 0
    raw = json.loads((run / "eval" / "valid-last-raw.json").read_text())
    assert raw["weights"] == "raw"
    assert raw["valid/loss"] == pytest.approx(float(history(trio / "plain")[-1]["valid/loss"]), rel=1e-6)

    loaded = load_run(run, "last")
    assert loaded.weights == "ema"
    state = loaded.network.state_dict()
    for kind in ("params", "buffers"):
        for k, v in last["callbacks"]["ema"][kind].items():
            assert torch.equal(state[k], v), k
    assert torch.equal(state["frozen.0.weight"], last["model"]["frozen.0.weight"])
    rawrun = load_run(run, "last", weights="raw")
    assert rawrun.weights == "raw" and all(torch.equal(v, last["model"][k]) for k, v in rawrun.network.state_dict().items())
    assert load_run(trio / "plain", "last").weights == "raw"  # no average in the checkpoint: the raw weights

    assert export_main([str(run), "--checkpoint", "last", "--out", str(trio / "ema.pt")]) == 0
    assert export_main([str(run), "--checkpoint", "last", "--out", str(trio / "raw.pt"), "--raw"]) == 0
    exported, exported_raw = (torch.load(trio / f, weights_only=True) for f in ("ema.pt", "raw.pt"))
    assert all(torch.equal(exported[k], state[k]) for k in state)
    assert all(torch.equal(exported_raw[k], last["model"][k]) for k in last["model"])
    assert "the --ema average" in capsys.readouterr().out


# --- resume -------------------------------------------------------------------------------------

def test_a_mid_epoch_resume_continues_the_same_average_bitwise_one_rank(tmp_path):
    assert main(args(tmp_path, "whole", "--ema", "0.8", "--max-steps", "1000")) == 0
    assert main(args(tmp_path, "cut", "--ema", "0.8", "--max-steps", "7")) == 0  # mid-epoch 1 (13 steps)
    assert ckpt(tmp_path / "cut")["callbacks"]["ema"]["updates"] == 7
    assert main(args(tmp_path, "cut", "--resume", "--max-steps", "1000")) == 0  # --ema from the saved settings
    averages_equal(tmp_path / "whole", tmp_path / "cut")
    a, b = ckpt(tmp_path / "whole")["model"], ckpt(tmp_path / "cut")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["torch", "horovod"])
def test_a_mid_epoch_resume_continues_the_same_average_two_ranks_under_mpirun(tmp_path, backend):
    # 2 ranks x 24 samples per step: 7 steps per epoch; cut after 4. torch: also resumed on 1 rank, with
    # an MLP and no augmentation (BatchNorm's batches and each rank's augmentation RNG depend on the world size).
    two, noise = ["--backend", backend, "--ema", "0.8"], backend != "torch"
    model = MODEL if noise else str(FIXTURES / "mlp_model.py")
    for name, extra in (("whole", ["--max-steps", "1000"]), ("cut", ["--max-steps", "4"])):
        out = scorch_train(args(tmp_path, name, *two, *extra, noise=noise, model=model), np_=2)
        assert out.returncode == 0, out.stderr
        assert f"backend {backend} (" in out.stderr
    assert ckpt(tmp_path / "cut")["callbacks"]["ema"]["updates"] == 4
    if backend == "torch":
        shutil.copytree(tmp_path / "cut", tmp_path / "one")
    out = scorch_train(args(tmp_path, "cut", "--resume", "--max-steps", "1000", noise=noise, model=model), np_=2)
    assert out.returncode == 0, out.stderr
    averages_equal(tmp_path / "whole", tmp_path / "cut")
    if backend == "torch":  # another world size: the same average within 1e-4
        assert main(args(tmp_path, "one", "--resume", "--max-steps", "1000", "--backend", "auto", noise=False, model=model)) == 0
        averages_equal(tmp_path / "whole", tmp_path / "one", tol=1e-4)
        a, b = ckpt(tmp_path / "whole")["model"], ckpt(tmp_path / "one")["model"]
        assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-4, rtol=0) for k in a)
        assert ckpt(tmp_path / "one")["step"] == ckpt(tmp_path / "whole")["step"]


def test_a_step_skipped_for_a_nan_loss_does_not_update_the_average(tmp_path):
    from tests.bad_input.sources import NAN_AT_STEP_5
    from tests.helpers import DATASET as BLOBS

    (tmp_path / "model.py").write_text(NAN_AT_STEP_5)
    assert main(base_args(tmp_path, "skip", "--epochs", "3", "--batch-size", "16", "--nan-policy", "skip", "--ema", "0.9",
                          model=str(tmp_path / "model.py"), dataset=BLOBS)) == 0
    last = ckpt(tmp_path / "skip")
    assert history(tmp_path / "skip")[-1]["skipped_steps"] == "1"
    assert last["callbacks"]["ema"]["updates"] == last["step"] - 1
    assert all(torch.isfinite(v).all() for v in last["callbacks"]["ema"]["params"].values())
