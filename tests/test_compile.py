"""--compile: torch.compile (inductor, CPU here) of the Network, in place.

Guarantees shown here, on the untidy set (301 training samples: every epoch ends with a short
batch), a frozen BatchNorm block and a trainable head with BatchNorm and dropout:
- checkpoints hold the Network's own state_dict keys (no ``_orig_mod.``): they load into a run
  without --compile, and such a run resumes them;
- a run stopped mid-epoch and resumed with --compile is bitwise the uninterrupted --compile run
  (each batch shape compiles once, ``dynamic=False``);
- --compile trains what the eager run trains, within 1e-4 (no dropout: inductor draws its own random
  numbers), on 1 rank and on 2 ranks under mpirun with torch.distributed (DDP) and with Horovod;
- where torch.compile cannot run (no C++ compiler), one line, exit 2, nothing written.
"""
import json
import signal

import pytest
import torch

from scorch.cli.train import main
from tests.helpers import BIN, FIXTURES, base_args, env, scorch_train, weights

COMPILE_MODEL = str(FIXTURES / "compile_model.py")
MLP = str(FIXTURES / "mlp_model.py")
UNTIDY = str(FIXTURES / "untidy_dataset.py")
SGD = ["--optimizer", "sgd", "--momentum", "0", "--lr", "0.1", "--epochs", "2"]


def args(root, name, *extra, model=COMPILE_MODEL):
    return base_args(root, name, "--batch-size", "16", *extra, model=model, dataset=UNTIDY)


def max_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def test_a_compiled_run_stopped_mid_epoch_resumes_bitwise_and_its_checkpoints_load_without_compile(tmp_path, capsys):
    from tests.test_preempt import history, start_and_signal
    common = ("--compile", "--lr", "0.05", "--epochs", "3")
    assert main(args(tmp_path, "whole", *common)) == 0
    assert "torch.compile: " in capsys.readouterr().err
    compiled = json.loads((tmp_path / "whole" / "meta.json").read_text())["compile"]
    assert compiled["graphs"] >= 2 and compiled["seconds"] > 0  # a full and a last, shorter batch at least

    torch.manual_seed(0)
    from tests.fixtures.compile_model import Network
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)
    assert list(whole["model"]) == list(Network().state_dict())  # plain keys, in the Network's order

    cmd = [str(BIN / "scorch-train"), *args(tmp_path, "cut", *common)]
    code, err = start_and_signal(cmd, tmp_path / "cut", signal.SIGUSR1, False)
    assert code == 3, err
    cut = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert 0 < cut["cursor"]["samples"] < 301, "the stop was not mid-epoch"
    assert main(args(tmp_path, "cut", *common[:1], "--resume")) == 0
    end = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert end["step"] == whole["step"]
    assert all(torch.equal(whole["model"][k], end["model"][k]) for k in whole["model"])
    assert history(tmp_path / "whole") == history(tmp_path / "cut")

    # The same checkpoint goes on without --compile (a trajectory setting: warned, not refused).
    assert main(args(tmp_path, "whole", "--resume", "--epochs", "4", "--set", "compile=False")) == 0
    assert torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 4


def test_compiled_training_is_eager_training_within_1e_4(tmp_path):
    no_dropout = ["--set", "model.dropout=0.0", "--batch-size", "32", *SGD]
    assert main(args(tmp_path, "eager", *no_dropout)) == 0
    assert main(args(tmp_path, "compiled", *no_dropout, "--compile")) == 0
    eager, compiled = weights(tmp_path / "eager"), weights(tmp_path / "compiled")
    assert max_diff(eager, compiled) < 1e-4
    torch.manual_seed(0)
    from tests.fixtures.compile_model import Network
    assert max_diff(eager, Network(dropout=0.0).state_dict()) > 1e-2  # it trained: the comparison can fail


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["torch", "horovod"])
def test_compiled_on_two_ranks_equals_eager_on_one_rank_with_twice_the_batch(tmp_path, backend):
    if backend == "horovod":
        pytest.importorskip("horovod.torch", reason="Horovod is not installed: run `make setup-horovod`")
    assert main(args(tmp_path, "one", *SGD, "--batch-size", "32", model=MLP)) == 0
    out = scorch_train(args(tmp_path, "two", *SGD, "--compile", "--backend", backend, model=MLP), np_=2)
    assert out.returncode == 0, out.stderr
    assert f"backend {backend}" in out.stderr and "torch.compile" in out.stderr
    assert max_diff(weights(tmp_path / "one"), weights(tmp_path / "two")) < 1e-4
    assert json.loads((tmp_path / "two" / "meta.json").read_text())["compile"]["graphs"] >= 1


def test_compile_without_a_cpp_compiler_is_one_line_and_writes_nothing(tmp_path):
    import subprocess
    e = {**env(), "CXX": str(tmp_path / "no-such-c++")}
    e["PATH"] = str(BIN)  # no g++ either
    proc = subprocess.run([str(BIN / "scorch-train"), *args(tmp_path / "runs", "r", "--compile")], capture_output=True,
                          text=True, env=e, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--compile" in lines[0] and "C++ compiler" in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists()


def test_compiled_accumulation_with_a_short_last_window_equals_the_larger_eager_batch(tmp_path):
    # 301 = 12 x 24 + 13: every epoch ends with a window of micro-batches of 8 and 5 (more graphs).
    assert main(args(tmp_path, "eager", *SGD, "--batch-size", "24", model=MLP)) == 0
    assert main(args(tmp_path, "acc", *SGD, "--batch-size", "8", "--accumulate", "3", "--compile", model=MLP)) == 0
    assert max_diff(weights(tmp_path / "eager"), weights(tmp_path / "acc")) < 1e-4
    assert json.loads((tmp_path / "acc" / "meta.json").read_text())["compile"]["graphs"] >= 3
