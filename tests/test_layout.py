"""scorch.rundir.layout: the names of a run directory, and one rule for "best" / "last" / a checkpoint file that
load_run, scorch-test and scorch-train --test share."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

import scorch
from scorch import errors
from scorch.cli.test import main as scorch_test_main
from scorch.cli.train import main
from scorch.errors import ScorchError
from scorch.rundir import checkpoint, layout
from tests.helpers import base_args


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-epoch run keeping every checkpoint."""
    root = tmp_path_factory.mktemp("layout")
    assert main(base_args(root, "r", "--epochs", "3", "--batch-size", "16", "--keep-checkpoints", "5")) == 0
    return root / "r"


def test_the_run_directory_has_the_names_layout_gives(trained: Path) -> None:
    names = layout.RunLayout(trained)
    for path in (names.config, names.meta, names.history, names.log, names.checkpoints.last, names.checkpoints.best):
        assert path.is_file(), path
    assert names.tensorboard.is_dir()
    kept = names.checkpoints.kept()
    assert [p.name for p in kept] == sorted((p.name for p in (trained / "checkpoints").glob("step-*.pt")), reverse=True)
    assert len(kept) == 3 and all(layout.is_checkpoint(p) for p in kept)
    step = checkpoint.load(kept[0])["step"]
    assert names.checkpoints.step(step) == kept[0] and kept[0].name == f"step-{step:09d}.pt"
    assert names.eval_file("test", "best") == trained / "eval" / "test-best.json"
    assert names.predictions_file("valid", "last") == trained / "eval" / "valid-last-predictions.pt"


def test_best_falls_back_to_last_saying_so_and_a_file_is_found_where_given(trained: Path, tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    run = tmp_path / "r"
    shutil.copytree(trained, run)
    files = layout.RunLayout(run).checkpoints
    assert layout.choose_checkpoint(run, "best", "who") == layout.Chosen(files.best, "best")
    assert layout.choose_checkpoint(run, "last", "who") == layout.Chosen(files.last, "last")
    files.best.unlink()
    with caplog.at_level(logging.WARNING, logger="scorch"):
        chosen = layout.choose_checkpoint(run, "best", "who")
    assert chosen == layout.Chosen(files.last, "last", fell_back=True)
    assert "who: " in caplog.text and "has no best.pt" in caplog.text and "using last.pt" in caplog.text
    kept = files.kept()[-1]
    assert layout.choose_checkpoint(run, kept, "who") == layout.Chosen(kept, kept.stem)  # as given
    for given in (f"checkpoints/{kept.name}", kept.name):  # relative to RUN_DIR, to RUN_DIR/checkpoints
        assert layout.choose_checkpoint(run, given, "who") == layout.Chosen(run / "checkpoints" / kept.name, kept.stem)
    files.last.unlink()
    for which, words in (("best", "who best: .* has neither checkpoints/best.pt nor last.pt"),
                         ("last", "who last: .* has no checkpoints/last.pt"), ("nope.pt", "who: checkpoint 'nope.pt' not found")):
        with pytest.raises(ScorchError, match=words) as info:
            layout.choose_checkpoint(run, which, "who")
        assert "\n" not in str(info.value)


def test_load_run_and_scorch_test_pick_the_same_checkpoint(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Without best.pt, "best" is last.pt for both (and scorch-test writes it as test-last.json); a
    checkpoint file relative to the run directory is the same file for both."""
    run = tmp_path / "r"
    shutil.copytree(trained, run)
    (run / "checkpoints" / "best.pt").unlink()
    monkeypatch.chdir(tmp_path / "..")  # a relative checkpoint is not found as given from here
    loaded = scorch.load_run(run, checkpoint="best")
    assert loaded.checkpoint.path == run / "checkpoints" / "last.pt" and loaded.checkpoint.epoch == 3
    assert scorch_test_main([str(run), "--checkpoint", "best"]) == 0
    tested = json.loads((run / "eval" / "test-last.json").read_text())
    assert Path(tested["checkpoint"]) == loaded.checkpoint.path and tested["epoch"] == loaded.checkpoint.epoch

    first = sorted((run / "checkpoints").glob("step-*.pt"))[0]
    relative = f"checkpoints/{first.name}"
    loaded = scorch.load_run(run, checkpoint=relative)
    assert loaded.checkpoint.path == first and loaded.checkpoint.epoch == 1
    assert scorch_test_main([str(run), "--checkpoint", relative, "--split", "valid"]) == 0
    tested = json.loads((run / "eval" / f"valid-{first.stem}.json").read_text())
    assert Path(tested["checkpoint"]) == first and tested["epoch"] == 1
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {run / 'eval' / f'valid-{first.stem}.json'}"


def test_non_finite_weights_is_a_training_error_importable_from_checkpoint() -> None:
    exc = checkpoint.NonFiniteWeights(["a.weight", "b.bias", "c", "d"])
    assert checkpoint.NonFiniteWeights is errors.NonFiniteWeights
    assert isinstance(exc, errors.TrainingError) and isinstance(exc, errors.Error)
    assert exc.exit_code == errors.EXIT_BAD_INPUT and str(exc) == "a.weight, b.bias, c" and exc.names[-1] == "d"
