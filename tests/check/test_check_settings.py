"""scorch-check takes --config and --set as scorch-train does, and warns when a classifier's first loss
is far above ln(classes)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from scorch import check
from scorch.cli.check import main
from scorch.contract.userfiles import module_name
from tests.helpers import DATASET as BLOBS, FIXTURES, MODEL as MLP

MODEL = str(FIXTURES / "parts_model.py")
DATASET = str(FIXTURES / "parts_dataset.py")
OVERCONFIDENT = str(Path(__file__).parent / "fixtures" / "overconfident_model.py")
FAST = ["--steps", "5", "--sample", "4"]


def seen(path: str, role: str) -> dict[str, list[dict]]:
    return sys.modules[module_name(path, role)].SEEN


def test_set_reaches_every_part_as_in_scorch_train(capsys):
    code = main(["--model", MODEL, "--dataset", DATASET, *FAST, "--set", "socket.loss_weight=2.0",
                 "--set", "shared.context=6", "--set", "dataset.strength=0.5", "--set", "dataset.n_classes=5"])
    out = capsys.readouterr().out
    assert code in (0, 1), out  # 1: the overfit check may want more than 5 steps
    model, data = seen(MODEL, "model"), seen(DATASET, "dataset")
    assert model["Network"][-1] == {"width": 8, "context": 6, "n_classes": 5}  # n_classes: DataSetIndex.model_settings()
    assert model["Socket"][-1] == {"loss_weight": 2.0, "context": 6}
    assert data["DataSetIndex"][-1] == {"n_classes": 5, "context": 6}
    assert data["DataSet"][-1]["strength"] == 0.5
    assert "FAIL  checkpoint.roundtrip" not in out and "FAIL  model." not in out, out  # a fresh Network with the same settings


def test_config_file_gives_the_files_and_settings_and_flags_win(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": MODEL, "dataset": DATASET, "epochs": 3, "socket": {"loss_weight": 3.0},
                                  "model_settings": {"width": 4}}))
    main(["--config", str(config), *FAST, "--set", "model.width=6"])
    assert "PASS  model.network" in capsys.readouterr().out
    assert seen(MODEL, "model")["Network"][-1]["width"] == 6
    assert seen(MODEL, "model")["Socket"][-1]["loss_weight"] == 3.0


@pytest.mark.parametrize("item, meant", [("socket.loss_wieght=1.0", "socket.loss_weight"),
                                         ("shared.contxt=3", "shared.context"), ("model.widht=2", "model.width")])
def test_a_misspelt_setting_is_one_line_with_the_nearest_and_exit_2(item, meant, capsys):
    assert main(["--model", MODEL, "--dataset", DATASET, "--set", item]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no check ran
    assert captured.err.count("\n") == 1 and captured.err.rstrip().endswith(f"did you mean {meant}?"), captured.err


def test_a_training_setting_given_with_set_is_said_to_have_no_effect(capsys):
    main(["--model", MLP, "--dataset", BLOBS, *FAST, "--set", "lr=0.5"])
    assert "--set lr: a setting of training, not of these checks" in capsys.readouterr().err


def test_a_first_loss_far_above_ln_classes_is_one_warn_line_naming_the_numbers(capsys):
    code = main(["--model", OVERCONFIDENT, "--dataset", DATASET, *FAST, "--set", "dataset.n_classes=128"])
    out = capsys.readouterr().out
    warned = [line for line in out.splitlines() if line.startswith("WARN")]
    assert len(warned) == 1, out
    limit = 3 * math.log(128) + 1
    assert warned[0].startswith("WARN  model.first_loss        the first loss is "), warned
    assert f"far above ln(128) = 4.85 that an untrained classifier over 128 classes gives (CrossEntropyLoss; " \
           f"warned above 3 x ln(C) + 1 = {limit:.3g})" in warned[0]
    loss = float(warned[0].split("the first loss is ")[1].split(",")[0])
    assert loss > limit
    assert out.rstrip().endswith("1 warning")
    assert code == (1 if "FAIL" in out else 0)  # a warning alone does not fail


def test_a_first_loss_near_ln_classes_gives_no_warning(capsys):
    for model, dataset in ((MODEL, DATASET), (MLP, BLOBS)):
        main(["--model", model, "--dataset", dataset, *FAST])
        out = capsys.readouterr().out
        assert "PASS  model.criterion" in out and "WARN" not in out and "warning" not in out, out
    main(["--model", OVERCONFIDENT, "--dataset", DATASET, *FAST, "--set", "dataset.n_classes=128", "--set",
          "model.scale=1.0"])
    assert "WARN" not in capsys.readouterr().out


class _Mse:
    def __init__(self):
        self.loss = torch.nn.MSELoss()


class _Plain:
    pass


@pytest.mark.parametrize("socket, preds, targets, expected", [
    (_Plain(), (8, 10), ((8,), torch.long, 10), (10, "integer targets over 10 outputs")),
    (_Plain(), (2, 5, 65), ((2, 5), torch.long, 65), (65, "integer targets over 65 outputs")),  # a language model
    (_Plain(), (2, 4, 3, 3), ((2, 3, 3), torch.long, 4), (4, "integer targets over 4 outputs")),  # segmentation
    (_Plain(), (8, 10), ((8,), torch.float32, 10), None),  # a regression
    (_Plain(), (8, 1), ((8,), torch.long, 1), None),  # one output
    (_Plain(), (8, 10), ((8,), torch.long, 20), None),  # targets that are no class indices of 10
    (_Mse(), (8, 10), ((8,), torch.long, 10), None),  # a loss module of another kind
])
def test_classes_are_found_from_the_loss_or_the_shapes(socket, preds, targets, expected):
    shape, dtype, high = targets
    target = torch.full(shape, high - 1).to(dtype)  # the largest class index is high - 1
    assert check.classes(socket, [torch.zeros(preds)], [target]) == expected
