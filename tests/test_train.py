"""Single-process runs through main([...]): the run directory and its contents."""
import csv
import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from scorch.cli.train import main
from scorch.training.diagnostics import COLUMNS as DIAGNOSTIC_COLUMNS
from tests.helpers import DATASET, MODEL, base_args, scorch_train, unmeasured, weights


def history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert main(base_args(root, "r", "--epochs", "3", "--batch-size", "8", "--lr", "0.01", "--monitor", "valid/accuracy")) == 0
    return root / "r"


def test_run_directory_is_complete(finished_run):
    names = {p.name for p in finished_run.iterdir()}
    assert {"config.json", "meta.json", "history.csv", "log.txt", "tensorboard", "checkpoints",
            "mlp_model.py", "blobs_dataset.py"} <= names
    assert {p.name for p in (finished_run / "checkpoints").iterdir()} == {"last.pt", "best.pt"}
    assert (finished_run / "mlp_model.py").read_text() == Path(MODEL).read_text()


def test_config_json_holds_every_resolved_setting(finished_run):
    config = json.loads((finished_run / "config.json").read_text())
    assert config["epochs"] == 3 and config["batch_size"] == 8 and config["lr"] == 0.01
    assert config["name"] == "r" and config["monitor"] == "valid/accuracy"
    from scorch.config import TrainConfig
    assert set(config) == set(TrainConfig.__dataclass_fields__)


def test_meta_json(finished_run):
    meta = json.loads((finished_run / "meta.json").read_text())
    assert meta["world_size"] == 1 and meta["backend"] == "torch" and meta["device"] == "cpu"
    assert meta["status"] == "finished" and meta["end_time"] and meta["start_time"]
    assert meta["versions"]["torch"] == torch.__version__ and set(meta["versions"]) >= {"python", "scorch"}
    assert len(meta["hostnames"]) == 1 and meta["command"]


def test_history_has_one_row_per_epoch_with_every_metric(finished_run):
    rows = history(finished_run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert list(unmeasured(rows[0])) == ["epoch", "step", "lr", "train/loss", "train/accuracy", "train/first_class",
                                         "valid/loss", "valid/accuracy", "valid/first_class"]
    assert list(rows[0])[3] == "time" and [k for k in rows[0] if k.startswith("diag/")] == sorted(
        k for k in DIAGNOSTIC_COLUMNS if k != "diag/cuda_peak_mib")  # after the metrics (tests/test_diagnostics.py)
    assert [int(r["step"]) for r in rows] == [8, 16, 24]  # 64 samples / batch 8
    assert float(rows[-1]["train/loss"]) < float(rows[0]["train/loss"])


def test_validation_metrics_are_sample_weighted_over_the_whole_split(finished_run):
    # first_class is a property of the targets only: its exact mean over the 37 valid samples is known.
    from tests.fixtures.blobs_dataset import DataSet, DataSetIndex
    valid = DataSet(DataSetIndex(), "valid")
    expected = sum(int(valid[i][1][0] == 0) for i in range(len(valid))) / len(valid)
    for row in history(finished_run):
        assert float(row["valid/first_class"]) == pytest.approx(expected, abs=1e-12)


def test_tensorboard_events_hold_the_history_values(finished_run):
    acc = EventAccumulator(str(finished_run / "tensorboard"))
    acc.Reload()
    rows = history(finished_run)
    for key in ("train/loss", "valid/accuracy", "lr"):
        events = acc.Scalars(key)
        assert [e.step for e in events] == [1, 2, 3]
        assert [e.value for e in events] == pytest.approx([float(r[key]) for r in rows], rel=1e-6)


def test_checkpoint_is_plain_and_complete(finished_run):
    ckpt = torch.load(finished_run / "checkpoints" / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "scaler", "epoch", "step", "rng", "config", "loop"} <= set(ckpt)
    assert ckpt["epoch"] == 3 and ckpt["step"] == 24 and len(ckpt["rng"]) == 1
    assert not any(k.startswith("module.") for k in ckpt["model"])
    from tests.fixtures.mlp_model import Network
    Network().load_state_dict(ckpt["model"])  # a plain state_dict of the user's Network


def test_best_checkpoint_is_the_best_epoch(finished_run):
    rows = history(finished_run)
    best_epoch = max(rows, key=lambda r: float(r["valid/accuracy"]))["epoch"]
    best = torch.load(finished_run / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == int(best_epoch)
    assert best["loop"]["best"] == pytest.approx(float(rows[int(best_epoch) - 1]["valid/accuracy"]))


def test_parameters_outside_trainable_modules_do_not_change(tmp_path):
    assert main(base_args(tmp_path, "a", "--epochs", "1")) == 0
    torch.manual_seed(0)
    from tests.fixtures.mlp_model import Network
    start = Network()  # scorch seeds with --seed (0) before building the Network
    w = weights(tmp_path / "a")
    assert torch.equal(w["frozen.weight"], start.frozen.weight.detach())
    assert not torch.equal(w["body.0.weight"], start.body[0].weight.detach())


def test_refuses_a_non_empty_run_directory_then_overwrite_replaces_it(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "precious.txt").write_text("keep me")
    assert main(base_args(tmp_path, "r", "--epochs", "1")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists and is not empty" in err[0] and "--overwrite" in err[0]
    assert [p.name for p in run.iterdir()] == ["precious.txt"]
    assert main(base_args(tmp_path, "r", "--epochs", "1", "--overwrite")) == 0
    assert not (run / "precious.txt").exists() and (run / "checkpoints" / "last.pt").exists()


def test_early_stopping_with_patience(tmp_path):
    # valid/first_class depends on the targets only, so it never improves after epoch 1.
    assert main(base_args(tmp_path, "p", "--epochs", "20", "--patience", "2", "--monitor", "valid/first_class",
                          "--monitor-mode", "max")) == 0
    rows = history(tmp_path / "p")
    assert len(rows) == 3  # epoch 1 sets the best; 2 and 3 do not improve on a constant


@pytest.mark.parametrize("val_every", [None, "3"])
def test_a_run_early_stopping_ended_is_finished_for_a_repeated_command(tmp_path, capsys, val_every):
    # A job script runs the same command again (--auto-resume after a requeue): an early-stopped
    # run has nothing to do, as one that ran all its epochs, and trains on with a larger --patience.
    # With --val-every 3 (4 steps an epoch) the stop comes at a validation inside an epoch.
    args = base_args(tmp_path, "p", "--epochs", "20", "--patience", "2", "--monitor", "valid/first_class",
                     "--monitor-mode", "max", "--batch-size", "16", *(["--val-every", val_every] if val_every else []))
    assert main(args) == 0
    before = (history(tmp_path / "p"), weights(tmp_path / "p"))
    capsys.readouterr()
    assert main([*args, "--auto-resume"]) == 0
    err = capsys.readouterr().err
    assert "nothing to do: early stopping ended the run at epoch" in err and "--patience 2" in err
    assert history(tmp_path / "p") == before[0]
    assert all(torch.equal(a, b) for a, b in zip(weights(tmp_path / "p").values(), before[1].values()))
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    assert meta["status"] == "finished" and len(meta["sessions"]) == 2
    assert main([*args, "--resume", "--patience", "3"]) == 0
    assert len(history(tmp_path / "p")) == len(before[0]) + 1  # one more validation without improvement


def test_accumulation_and_clipping_and_sgd_run(tmp_path):
    assert main(base_args(tmp_path, "acc", "--epochs", "2", "--batch-size", "8", "--accumulate", "3",
                          "--clip-grad", "0.5", "--optimizer", "sgd", "--lr", "0.1")) == 0
    rows = history(tmp_path / "acc")
    assert [int(r["step"]) for r in rows] == [3, 6]  # 8 batches per epoch: steps after 3, 6 and the last


def test_bf16_autocast_on_cpu(tmp_path):
    assert main(base_args(tmp_path, "amp", "--epochs", "1", "--amp", "bf16")) == 0
    assert all(v.dtype == torch.float32 for v in weights(tmp_path / "amp").values())


def test_python_api_trains_and_returns_the_result(tmp_path):
    import scorch
    cfg = scorch.TrainConfig(model=MODEL, dataset=DATASET, epochs=2, run_root=str(tmp_path), name="api", progress=False)
    result = scorch.train(cfg)
    assert result.epochs_done == 2 and result.run_dir == tmp_path / "api" and len(result.history) == 2
    assert result.monitor == "valid/loss" and result.best == min(r["valid/loss"] for r in result.history)


def test_console_script_help_lists_every_flag():
    out = scorch_train(["--help"])
    assert out.returncode == 0
    for flag in ("--epochs", "--batch-size", "--lr", "--optimizer", "--seed", "--workers", "--run-root", "--name",
                 "--resume", "--overwrite", "--backend", "--device", "--amp", "--accumulate", "--clip-grad",
                 "--monitor", "--monitor-mode", "--patience", "--debug", "--nproc-per-node", "--nnodes",
                 "--node-rank", "--master-addr", "--master-port"):
        assert flag in out.stdout, flag


def test_workers_load_data_in_subprocesses(tmp_path):
    assert main(base_args(tmp_path, "w", "--epochs", "1", "--workers", "2")) == 0
    assert len(history(tmp_path / "w")) == 1
