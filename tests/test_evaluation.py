"""Whole-split metrics (Socket.split_metrics), visualisations in TensorBoard (Socket.visualize),
scorch-test and scorch-train --test: exact on 1, 2 and 3 ranks (Horovod, the default under mpirun,
and torch.distributed) with a valid split of 37 that no world size divides."""
import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import IMAGES, SCALARS, TENSORS, EventAccumulator

from scorch.cli.test import main as scorch_test_main
from scorch.cli.train import main
from tests.helpers import BIN, FIXTURES, base_args, env, mpirun, run, scorch_train, snapshot

SPLIT = str(FIXTURES / "split_model.py")
UNTIDY = str(FIXTURES / "untidy_dataset.py")
MLP = str(FIXTURES / "mlp_model.py")


def args(root, name, *extra, model=SPLIT):
    # 301 train / 37 valid / 10 test samples; best.pt by the whole-split F1.
    return base_args(root, name, "--batch-size", "8", "--epochs", "2", "--lr", "0.05", "--monitor", "valid/f1", *extra,
                     model=model, dataset=UNTIDY)


def rows(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("split")
    assert main(args(root, "one")) == 0
    out = scorch_train(args(root, "two"), np_=2)  # Horovod: --backend auto under mpirun
    assert out.returncode == 0, out.stderr
    assert "backend horovod (started by mpirun, Horovod importable; on CPU it needs spare cores" in out.stderr
    out = scorch_train(args(root, "three", "--backend", "torch"), np_=3)
    assert out.returncode == 0, out.stderr
    return root


def valid_split():
    from tests.fixtures.untidy_dataset import DataSet, DataSetIndex
    ds = DataSet(DataSetIndex(), "valid")
    x = torch.stack([ds[i][0][0] for i in range(len(ds))])
    y = torch.stack([ds[i][1][0] for i in range(len(ds))])
    return x, y


def recompute(run_dir, which="last.pt", split="valid"):
    """The Socket's metrics, split metrics and loss on the whole split, from a checkpoint, in one batch."""
    from tests.fixtures.split_model import Network, Socket
    from tests.fixtures.untidy_dataset import DataSet, DataSetIndex
    ds = DataSet(DataSetIndex(), split)
    x = torch.stack([ds[i][0][0] for i in range(len(ds))])
    y = torch.stack([ds[i][1][0] for i in range(len(ds))])
    net = Network()
    net.load_state_dict(torch.load(run_dir / "checkpoints" / which, weights_only=True)["model"])
    net.eval()
    with torch.no_grad():
        preds = net([x])
        socket = Socket(net)
        values = {k: float(v) for k, v in socket.split_metrics(preds, [y]).items()}
        values["loss"] = float(socket.criterion(preds, [y]))
        values["accuracy"] = float(socket.metrics(preds, [y])["accuracy"])
    return values, preds


@pytest.mark.mpi
@pytest.mark.parametrize("name", ["one", "two", "three"])
def test_split_metrics_are_those_of_the_whole_split_on_any_world_size(runs, name):
    _, y = valid_split()
    exact_order = float((torch.arange(1, 38) * y).sum()) / 37
    history = rows(runs / name)
    for row in history:  # depend on the targets only: every sample exactly once, in dataset order
        assert float(row["valid/count"]) == 37 and float(row["valid/second_output_rows"]) == 37
        assert float(row["valid/order"]) == pytest.approx(exact_order, rel=1e-12)
    expected, _ = recompute(runs / name)  # the last epoch's validation is that of last.pt
    for key in ("median_margin", "f1", "loss", "accuracy"):
        assert float(history[-1][f"valid/{key}"]) == pytest.approx(expected[key], rel=1e-6, abs=1e-7), key


@pytest.mark.mpi
def test_a_median_is_not_the_mean_of_batch_medians(runs):
    # The comparison above can fail: per-batch medians averaged (what per-batch metrics do) differ.
    expected, preds = recompute(runs / "one")
    _, y = valid_split()
    logits = preds[0]
    margins = logits.gather(1, y[:, None])[:, 0] - logits.masked_fill(
        torch.nn.functional.one_hot(y, 3).bool(), float("-inf")).max(1).values
    batch_medians = [margins[i:i + 8].median().item() * len(margins[i:i + 8]) for i in range(0, 37, 8)]
    assert abs(sum(batch_medians) / 37 - expected["median_margin"]) > 1e-3


@pytest.mark.mpi
def test_split_metrics_are_columns_and_can_be_monitored(runs):
    for name in ("one", "two", "three"):
        history = rows(runs / name)
        f1 = [float(r["valid/f1"]) for r in history]
        best = torch.load(runs / name / "checkpoints" / "best.pt", weights_only=True)
        assert best["epoch"] == 1 + int(np.argmax(f1)) and best["loop"]["best"] == pytest.approx(max(f1))
    acc = EventAccumulator(str(runs / "two" / "tensorboard"), size_guidance={SCALARS: 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("valid/f1")] == [1, 2]
    assert [e.value for e in acc.Scalars("valid/f1")] == pytest.approx([float(r["valid/f1"]) for r in rows(runs / "two")])


@pytest.mark.mpi
def test_visualisations_are_read_back_from_the_event_files(runs):
    # 2 ranks: rank 0's first validation batch is samples 0, 2, ..., 14 (its shard is 0, 2, 4, ...).
    x, y = valid_split()
    first = list(range(0, 16, 2))
    acc = EventAccumulator(str(runs / "two" / "tensorboard"), size_guidance={IMAGES: 0, TENSORS: 0})
    acc.Reload()
    images = acc.Images("batch/inputs")
    assert [e.step for e in images] == [1, 2]  # the epoch as step
    pixels = np.array(Image.open(io.BytesIO(images[-1].encoded_image_string)))[:, :, 0]
    batch = x[first]
    expected = ((batch - batch.min()) / (batch.max() - batch.min()) * 255).numpy()
    assert pixels.shape == (8, 4) and np.abs(pixels - expected).max() <= 1.0
    texts = acc.Tensors("batch/targets/text_summary")
    assert [e.step for e in texts] == [1, 2]
    assert texts[0].tensor_proto.string_val[0].decode() == " ".join(str(int(v)) for v in y[first])


def with_edit(tmp_path, old, new, source=SPLIT, name="model.py"):
    text = Path(source).read_text()
    assert old in text, old
    path = tmp_path / name
    path.write_text(text.replace(old, new))
    return str(path)


def error_lines(text):
    return [line for line in text.splitlines() if line.startswith("scorch-")]


RETURN_VISUALS = 'return {"images": {"batch/inputs": image}, "texts": {"batch/targets": " ".join(map(str, targets[0].tolist()))}}'
BAD = {
    # name: (old, new, words of the one line)
    "split_metrics returns a string": ('"f1": np.mean(f1),', '"f1": "high",',
                                       ["Socket.split_metrics: metric 'f1' is a str, expected a number"]),
    "split_metrics raises": ("logits, y = preds[0], targets[0]", "logits, y = preds[0], targets[3]",
                             ["Socket.split_metrics raised IndexError"]),
    "split_metrics repeats a metric's name": ('"count": len(y),', '"accuracy": len(y),',
                                              ["Socket.split_metrics returned 'accuracy', which Socket.metrics returns too"]),
    "visualize returns an image of 5 channels": ("image = (x - x.min()) / (x.max() - x.min())", "image = torch.zeros(5, 8, 8)",
                                                 ["Socket.visualize: image 'batch/inputs' is tensor of shape (5, 8, 8)",
                                                  "expected a tensor CHW (C = 1, 3 or 4) or HW"]),
    "visualize returns a list": (RETURN_VISUALS, "return [image]", ["Socket.visualize returned list of 1", "expected a dict"]),
    "visualize raises": ("x = inputs[0]", "x = inputs[1]", ["Socket.visualize raised IndexError"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_split_metrics_and_visualisations_stop_before_training_with_one_line(tmp_path, capsys, case):
    old, new, words = BAD[case]
    capsys.readouterr()
    assert main(args(tmp_path, "bad", model=with_edit(tmp_path, old, new))) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and all(w in lines[0] for w in words), lines
    assert not (tmp_path / "bad").exists()  # checked before anything is written


def test_a_visualisation_failing_in_a_later_epoch_is_one_warning_and_training_goes_on(tmp_path, capsys):
    model = with_edit(tmp_path, "x = inputs[0]", "self.calls = getattr(self, 'calls', 0) + 1\n"
                      "        x = inputs[0] if self.calls < 3 else inputs[1]")  # pre-flight, epoch 1, then fails
    assert main(args(tmp_path, "r", "--epochs", "3", model=model)) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "Socket.visualize raised" in line]
    assert len(warnings) == 2 and "(epoch 2: no visualisation)" in warnings[0], err
    acc = EventAccumulator(str(tmp_path / "r" / "tensorboard"), size_guidance={IMAGES: 0})
    acc.Reload()
    assert [e.step for e in acc.Images("batch/inputs")] == [1]


@pytest.mark.mpi
def test_split_metrics_failing_mid_run_ends_every_rank_with_one_line(tmp_path):
    model = with_edit(tmp_path, "logits, y = preds[0], targets[0]",
                      "self.calls = getattr(self, 'calls', 0) + 1\n"
                      "        logits, y = preds[0], targets[0 if self.calls < 3 else 5]")  # pre-flight, epoch 1, then fails
    out = scorch_train(args(tmp_path, "r", "--epochs", "3", model=model), np_=2, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = error_lines(out.stderr)
    # Every rank raises it alike (rank 0 computed it and told the others): rank 0 alone says it.
    assert len(lines) == 1 and lines[0].startswith("scorch-train[rank 0]: error:"), out.stderr
    assert "Socket.split_metrics raised IndexError" in lines[0]


# ---- scorch-test and scorch-train --test ------------------------------------------------------

@pytest.mark.mpi
def test_scorch_test_under_mpirun_equals_a_recomputation_from_the_checkpoint(runs):
    cmd = [*mpirun(3), str(BIN / "scorch-test"), str(runs / "one"), "--split", "valid", "--predictions"]
    out = run(cmd, 300, env())
    assert out.returncode == 0, out.stderr
    result = json.loads((runs / "one" / "eval" / "valid-best.json").read_text())
    expected, preds = recompute(runs / "one", "best.pt")
    best = torch.load(runs / "one" / "checkpoints" / "best.pt", weights_only=True)
    assert (result["epoch"], result["samples"], result["world_size"]) == (best["epoch"], 37, 3)
    assert result["checkpoint"] == str(runs / "one" / "checkpoints" / "best.pt")
    for key in ("loss", "accuracy", "median_margin", "f1", "count", "order"):
        assert result[f"valid/{key}"] == pytest.approx(expected[key], rel=1e-6, abs=1e-7), key
        assert f"valid/{key} " in out.stdout
    saved = torch.load(runs / "one" / "eval" / "valid-best-predictions.pt", weights_only=True)
    assert torch.equal(saved["index"], torch.arange(37))
    assert len(saved["outputs"]) == 2
    for got, want in zip(saved["outputs"], preds):  # one row per sample, in dataset order
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-6)


def test_scorch_test_of_the_last_checkpoint_equals_the_runs_last_validation(runs, capsys):
    assert scorch_test_main([str(runs / "one"), "--split", "valid", "--checkpoint", "last"]) == 0
    out = capsys.readouterr().out
    result = json.loads((runs / "one" / "eval" / "valid-last.json").read_text())
    last = rows(runs / "one")[-1]
    for key in ("loss", "accuracy", "f1", "median_margin", "count"):
        assert result[f"valid/{key}"] == pytest.approx(float(last[f"valid/{key}"]), rel=1e-6, abs=1e-7), key
    assert out.splitlines()[-1] == f"wrote {runs / 'one' / 'eval' / 'valid-last.json'}"


def test_scorch_train_test_writes_what_scorch_test_writes(tmp_path, capsys):
    assert main(args(tmp_path, "r", "--test")) == 0
    trained = json.loads((tmp_path / "r" / "eval" / "test-best.json").read_text())
    expected, _ = recompute(tmp_path / "r", "best.pt", split="test")
    assert trained["samples"] == 10 and trained["test/f1"] == pytest.approx(expected["f1"], rel=1e-6)
    assert trained["test/loss"] == pytest.approx(expected["loss"], rel=1e-6)
    (tmp_path / "r" / "eval" / "test-best.json").unlink()
    assert scorch_test_main([str(tmp_path / "r")]) == 0
    again = json.loads((tmp_path / "r" / "eval" / "test-best.json").read_text())
    assert {k: v for k, v in again.items() if k.startswith("test/")} == {k: v for k, v in trained.items() if k.startswith("test/")}


@pytest.fixture()
def finished(tmp_path):
    assert main(base_args(tmp_path, "mlp", "--epochs", "1", "--dataset", UNTIDY)) == 0
    return tmp_path / "mlp"


def scorch_test_fails(argv, capsys):
    capsys.readouterr()
    code = scorch_test_main(argv)
    lines = error_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1, lines
    return lines[0]


def test_scorch_test_on_bad_input_is_one_line_and_writes_nothing(runs, finished, tmp_path, capsys):
    assert "RUN_DIR: " + str(tmp_path) + " has no config.json" in scorch_test_fails([str(tmp_path)], capsys)
    assert "is not a directory" in scorch_test_fails([str(tmp_path / "nothing")], capsys)
    line = scorch_test_fails([str(finished), "--checkpoint", str(runs / "one" / "checkpoints" / "best.pt")], capsys)
    assert "checkpoint does not fit" in line and "mlp_model.py: Network" in line and "no 'frozen.weight'" in line
    assert "--checkpoint: checkpoint 'nope.pt' not found" in scorch_test_fails([str(finished), "--checkpoint", "nope.pt"],
                                                                                capsys)
    (finished / "checkpoints" / "best.pt").unlink()
    (finished / "checkpoints" / "last.pt").unlink()  # without best.pt "best" is last.pt (tests/test_layout.py)
    before = snapshot(finished)
    assert "--checkpoint best: " in scorch_test_fails([str(finished)], capsys)
    assert "--batch-size: expected a whole number >= 1" in scorch_test_fails([str(finished), "--batch-size", "0"], capsys)
    assert snapshot(finished) == before  # nothing written, no eval/


def test_scorch_test_of_an_empty_split_and_a_run_without_its_files(finished, tmp_path, capsys):
    copy = finished / "untidy_dataset.py"
    copy.write_text(copy.read_text().replace('"test": 10', '"test": 0'))
    assert "DataSet(mode='test') has no samples" in scorch_test_fails([str(finished), "--checkpoint", "last"], capsys)
    copy.unlink()
    assert "has no copy of the dataset file (untidy_dataset.py)" in scorch_test_fails([str(finished)], capsys)


def test_scorch_test_is_a_console_script_with_help():
    out = subprocess.run([str(BIN / "scorch-test"), "--help"], capture_output=True, text=True, env=env(), timeout=60)
    assert out.returncode == 0 and out.stderr == ""
    assert re.search(r"--checkpoint CHECKPOINT\s+best, last, or a checkpoint file", out.stdout)
    assert "--predictions" in out.stdout and "{test,valid}" in out.stdout


def test_scorch_check_runs_split_metrics_and_visualize_on_a_sample(capsys):
    from scorch.cli.check import main as check_main
    assert check_main(["--model", SPLIT, "--dataset", UNTIDY]) == 0
    out = capsys.readouterr().out
    assert re.search(r"PASS\s+model\.split_metrics\s+count 37, order 16\.97, median_margin .*, second_output_rows 37 "
                     r"on 37 valid samples", out), out
    assert re.search(r"PASS\s+model\.visualize\s+1 image \(batch/inputs \(8, 4\)\), 1 text \(batch/targets\)", out), out


def test_scorch_check_shows_a_failing_split_metrics(tmp_path, capsys):
    from scorch.cli.check import main as check_main
    model = with_edit(tmp_path, '"f1": np.mean(f1),', '"f1": [1, 2],')
    assert check_main(["--model", model, "--dataset", UNTIDY]) == 1
    out = capsys.readouterr().out
    assert re.search(r"FAIL\s+model\.split_metrics\s+.*Socket.split_metrics: metric 'f1' is a list of 2, expected a number", out)


def test_outputs_without_a_sample_dimension_cannot_make_a_split(tmp_path, capsys):
    model = with_edit(tmp_path, "return [logits, logits.softmax(dim=1)[:, :2]]", "return [logits, logits.sum()]")
    line_words = ["output 1", "expected one shape per position", "first dimension"]
    capsys.readouterr()
    assert main(args(tmp_path, "r", model=model)) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and all(w in lines[0] for w in line_words), lines
    shutil.rmtree(tmp_path / "r", ignore_errors=True)


def test_visualisations_are_files_of_the_run_directory_per_epoch_and_a_resume_rewrites_what_it_redoes(tmp_path):
    assert main(args(tmp_path, "r")) == 0
    visuals = tmp_path / "r" / "visuals"
    assert sorted(p.name for p in visuals.iterdir()) == ["epoch-001", "epoch-002"]
    assert sorted(p.name for p in (visuals / "epoch-002").iterdir()) == ["batch_inputs.png", "batch_targets.txt"]
    x, y = valid_split()
    pixels = np.array(Image.open(visuals / "epoch-002" / "batch_inputs.png"))
    batch = x[:8]  # one rank: the first validation batch is samples 0..7
    expected = ((batch - batch.min()) / (batch.max() - batch.min()) * 255).numpy()
    assert pixels.shape == (8, 4) and np.abs(pixels - expected).max() <= 1.0
    assert (visuals / "epoch-002" / "batch_targets.txt").read_text() == " ".join(str(int(v)) for v in y[:8])
    # What a session that died in epoch 3 before its checkpoint left; the resume redoes epoch 3.
    (visuals / "epoch-003").mkdir()
    (visuals / "epoch-003" / "stale.txt").write_text("from the session that died")
    assert main(args(tmp_path, "r", "--epochs", "3", "--resume")) == 0
    assert sorted(p.name for p in (visuals / "epoch-003").iterdir()) == ["batch_inputs.png", "batch_targets.txt"]
    assert not list(visuals.rglob(".*"))  # no temp file left


@pytest.mark.mpi
def test_visualisation_files_are_the_main_ranks(runs):
    _, y = valid_split()
    first = list(range(0, 16, 2))  # rank 0's shard
    assert sorted(p.name for p in (runs / "two" / "visuals").iterdir()) == ["epoch-001", "epoch-002"]
    text = (runs / "two" / "visuals" / "epoch-001" / "batch_targets.txt").read_text()
    assert text == " ".join(str(int(v)) for v in y[first])
