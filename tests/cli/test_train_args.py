"""scorch-train's command line: --KEY=VALUE as shorthand for --set, and --resume of a run that is not there."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from scorch.cli.train import main, parse_config
from tests.helpers import REPO, base_args, snapshot

TEMPLATE_MODEL = str(REPO / "scorch" / "templates" / "mlp" / "model.py")  # Network(n_features=16, n_classes=4, hidden=64)
TEMPLATE_DATASET = str(REPO / "scorch" / "templates" / "mlp" / "dataset.py")
FILES = ["--model", "m.py", "--dataset", "d.py"]


def test_key_value_is_exact_shorthand_for_set() -> None:
    shorthand = parse_config([*FILES, "--model.n_filters=10", "--lr_schedule=[[3, 0.1],[100, 0.01]]", "--warmup-epochs=2",
                              "--dataset.size=7", "--batch_size=8"])
    long_form = parse_config([*FILES, "--set", "model.n_filters=10", "--set", "lr_schedule=[[3, 0.1],[100, 0.01]]",
                              "--set", "warmup-epochs=2", "--set", "dataset.size=7", "--set", "batch_size=8"])
    assert shorthand == long_form
    assert shorthand.model_settings == {"n_filters": 10} and shorthand.dataset_settings == {"size": 7}
    assert shorthand.lr_schedule == [[3, 0.1], [100, 0.01]] and shorthand.warmup_epochs == 2 and shorthand.batch_size == 8


def test_shorthand_and_set_apply_in_command_line_order() -> None:
    assert parse_config([*FILES, "--set", "warmup_epochs=1", "--warmup_epochs=2"]).warmup_epochs == 2
    assert parse_config([*FILES, "--warmup_epochs=2", "--set", "warmup_epochs=1"]).warmup_epochs == 1
    assert parse_config([*FILES, "--batch-size", "4", "--batch_size=8"]).batch_size == 8  # --set beats flags


@pytest.mark.parametrize("args, words", [
    (["--learning_rate=3"], ["scorch-train: error: --learning_rate: unknown setting 'learning_rate'; did you mean lr?"]),
    (["--zzz=3"], ["scorch-train: error: --zzz: unknown setting 'zzz'; scorch-train --help lists every setting",
                   "model.NAME"]),
    (["--warmup_epochs=many"], ["--warmup_epochs: warmup_epochs = 'many' is a str, expected int"]),
    (["--lr_schedule=[[3, -1]]"], ["--set lr_schedule", "not a schedule"]),
    (["--model.n_filters", "10"], ["unrecognized arguments: --model.n_filters 10",
                                   "a setting without a flag of its own takes --KEY=VALUE"]),
    (["--model.nope=1"], ["model.nope", "unknown setting", "Network", "hidden"]),
])
def test_shorthand_errors_are_those_of_set(tmp_path: Path, args: list[str], words: list[str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(base_args(tmp_path, "r", *args, model=TEMPLATE_MODEL, dataset=TEMPLATE_DATASET)) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    for word in words:
        assert word in err[0], (word, err[0])
    assert not any(tmp_path.iterdir())


def test_a_run_with_shorthand_settings_records_them(tmp_path: Path) -> None:
    args = base_args(tmp_path, "s", "--epochs", "1", "--model.hidden=8", "--dataset.n_classes=3",
                     "--lr_schedule=[[3, 0.1],[100, 0.01]]", model=TEMPLATE_MODEL, dataset=TEMPLATE_DATASET)
    assert main(args) == 0
    saved = json.loads((tmp_path / "s" / "config.json").read_text())
    assert saved["model_settings"]["hidden"] == 8 and saved["dataset_settings"]["n_classes"] == 3
    assert saved["lr_schedule"] == [[3, 0.1], [100, 0.01]]


def test_resume_of_a_run_that_is_not_there_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "other").mkdir()
    before = snapshot(tmp_path)
    assert main(["--resume", "--name", "ghost", "--run-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"scorch-train: error: --resume: there is no run {tmp_path / 'ghost'} (no config.json in it); check "
                   "--run-root and --name, or start the run without --resume"]
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["other"]
    assert main(["--resume", "--run-root", str(tmp_path)]) == 2
    assert "--resume needs --name" in capsys.readouterr().err
