"""Every part takes settings: socket.NAME, dataset.NAME (the DataSet's own too), shared.NAME, the
DataSetIndex's model_settings() facts for the Network; a misspelt name suggests the nearest; all of
it is recorded in config.json, so that --resume, load_run, scorch-test, scorch-report and sweeps
build the same parts."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import scorch
from scorch.cli.train import main
from scorch.contract.userfiles import module_name
from tests.helpers import FIXTURES, base_args

MODEL = str(FIXTURES / "parts_model.py")
DATASET = str(FIXTURES / "parts_dataset.py")
SETTINGS = ("model_settings", "socket_settings", "dataset_settings", "shared_settings")


def train(root: Path, name: str, *extra: str) -> int:
    return main(base_args(root, name, "--epochs", "1", "--batch-size", "16", *extra, model=MODEL, dataset=DATASET))


def seen(path: str, role: str) -> dict[str, list[dict[str, Any]]]:
    """What the constructors of the user's file at ``path`` were given in this process (its SEEN)."""
    return sys.modules[module_name(path, role)].SEEN


def forget(*files: tuple[str, str]) -> None:
    for path, role in files:
        for calls in seen(path, role).values():
            calls.clear()


def saved(run: Path) -> dict[str, Any]:
    config = json.loads((run / "config.json").read_text())
    return {k: config.get(k) for k in SETTINGS}


@pytest.fixture(autouse=True)
def fresh_records():
    """SEEN of both fixture files starts empty in each test (they are imported once per process)."""
    yield
    for path, role in ((MODEL, "model"), (DATASET, "dataset")):
        if module_name(path, role) in sys.modules:
            forget((path, role))


def test_each_prefix_reaches_its_part_and_config_json_records_it(tmp_path):
    assert train(tmp_path, "r", "--set", "socket.loss_weight=0.5", "--set", "dataset.strength=0.25",
                 "--set", "model.width=5", "--set", "dataset.n_classes=4") == 0
    model, data = seen(MODEL, "model"), seen(DATASET, "dataset")
    assert model["Socket"][-1] == {"loss_weight": 0.5, "context": 4}
    assert model["Network"][-1] == {"width": 5, "context": 4, "n_classes": 4}  # n_classes: DataSetIndex.model_settings()
    assert data["DataSetIndex"][-1] == {"n_classes": 4, "context": 4}  # strength is the DataSet's: not given to the index
    assert {(c["mode"], c["strength"]) for c in data["DataSet"]} == {("train", 0.25), ("valid", 0.25)}
    assert saved(tmp_path / "r") == {"model_settings": {"width": 5, "context": 4, "n_classes": 4},
                                     "socket_settings": {"loss_weight": 0.5, "context": 4},
                                     "dataset_settings": {"n_classes": 4, "context": 4, "strength": 0.25},
                                     "shared_settings": {}}


def test_shared_reaches_every_part_that_takes_it_and_a_parts_own_setting_wins(tmp_path):
    assert train(tmp_path, "r", "--set", "shared.context=6", "--set", "socket.context=9") == 0
    model, data = seen(MODEL, "model"), seen(DATASET, "dataset")
    assert model["Network"][-1]["context"] == 6
    assert model["Socket"][-1]["context"] == 9  # socket.context beats shared.context
    assert data["DataSetIndex"][-1]["context"] == 6
    assert {c["context"] for c in data["DataSet"]} == {6}
    assert saved(tmp_path / "r")["shared_settings"] == {"context": 6}


def test_the_same_settings_from_a_config_file_as_sections(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": MODEL, "dataset": DATASET, "socket": {"loss_weight": 2.0},
                                  "shared_settings": {"context": 3}, "dataset_settings": {"strength": 0.5}}))
    assert main(["--config", str(config), "--run-root", str(tmp_path), "--name", "r", "--epochs", "1",
                 "--no-progress", "--socket.loss_weight=3.0"]) == 0  # --KEY=VALUE is --set KEY=VALUE
    settings = saved(tmp_path / "r")
    assert settings["socket_settings"] == {"loss_weight": 3.0, "context": 3}  # --set beats the file
    assert settings["dataset_settings"]["strength"] == 0.5 and settings["model_settings"]["context"] == 3


def test_the_index_tells_the_network_its_facts_and_a_setting_given_wins_with_a_warning(tmp_path, capsys):
    assert train(tmp_path, "hook") == 0
    assert seen(MODEL, "model")["Network"][-1]["n_classes"] == 3  # the index's default, not the Network's (2)
    assert "overrides" not in capsys.readouterr().err
    assert train(tmp_path, "given", "--set", "model.n_classes=5") == 0
    assert seen(MODEL, "model")["Network"][-1]["n_classes"] == 5
    warned = [line for line in capsys.readouterr().err.splitlines() if "overrides" in line]
    assert warned == ["scorch: model.n_classes = 5 overrides DataSetIndex.model_settings()'s n_classes = 3: the Network "
                      "gets 5"]
    assert saved(tmp_path / "given")["model_settings"]["n_classes"] == 5


@pytest.mark.parametrize("item, meant", [
    ("socket.loss_wieght=1.0", "socket.loss_weight"),
    ("dataset.strenght=0.1", "dataset.strength"),
    ("shared.contxt=5", "shared.context"),
    ("model.widht=3", "model.width"),
    ("bach_size=3", "batch_size"),
    ("width=3", "model.width"),  # a part's setting without its prefix
    ("loss_weight=2.0", "socket.loss_weight"),
    ("strenght=0.1", "dataset.strength"),
    ("context=3", "shared.context"),  # several parts take it
])
def test_a_misspelt_setting_is_one_line_with_the_nearest_exit_2_and_nothing_written(item, meant, tmp_path, capsys):
    root = tmp_path / "runs"
    assert main(base_args(root, "r", "--epochs", "1", "--set", item, model=MODEL, dataset=DATASET)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("scorch-train: error: "), err
    assert err.rstrip().endswith(f"did you mean {meant}?"), err
    assert not root.exists()


def test_a_shared_setting_no_part_takes_and_a_wrong_type_are_refused(tmp_path, capsys):
    root = tmp_path / "runs"
    assert main(base_args(root, "r", "--set", "shared.depth=3", model=MODEL, dataset=DATASET)) == 2
    assert "--set shared.depth: no part takes a setting 'depth'" in capsys.readouterr().err
    assert main(base_args(root, "r", "--set", "socket.loss_weight='heavy'", model=MODEL, dataset=DATASET)) == 2
    assert "expected a float like the default 1.0" in capsys.readouterr().err
    assert not root.exists()


def test_settings_survive_resume_load_run_scorch_test_and_report(tmp_path, capsys):
    from scorch.cli.report import main as report
    from scorch.cli.test import main as scorch_test
    from scorch.rundir import moved

    given = ("--set", "socket.loss_weight=0.5", "--set", "dataset.strength=0.25", "--set", "shared.context=6",
             "--set", "dataset.n_classes=4")
    assert train(tmp_path, "r", *given) == 0
    run = tmp_path / "r"
    first = saved(run)
    forget((MODEL, "model"), (DATASET, "dataset"))
    assert main(base_args(tmp_path, "r", "--resume", "--epochs", "2", model=MODEL, dataset=DATASET)) == 0
    assert saved(run) == first
    model, data = seen(MODEL, "model"), seen(DATASET, "dataset")
    assert model["Network"][-1] == {"width": 8, "context": 6, "n_classes": 4}
    assert model["Socket"][-1] == {"loss_weight": 0.5, "context": 6}
    assert {(c["strength"], c["context"]) for c in data["DataSet"]} == {(0.25, 6)}

    loaded = scorch.load_run(run)
    assert (loaded.network.context, loaded.network.n_classes, loaded.socket.raw.loss_weight) == (6, 4, 0.5)
    assert (loaded.dataset("train").strength, loaded.dataset_index().n_classes) == (0.25, 4)

    assert scorch_test([str(run)]) == 0  # built from the run's copies of the files
    copies = moved.copies(run, MODEL, DATASET)
    assert seen(str(copies[0]), "model")["Socket"][-1] == {"loss_weight": 0.5, "context": 6}
    assert seen(str(copies[1]), "dataset")["DataSet"][-1] == {"mode": "test", "strength": 0.25, "context": 6}

    assert report([str(run), "--out", str(tmp_path / "r.png")]) == 0
    from scorch.experiments.report import load_run as report_run
    settings = report_run(run).settings
    assert (settings["socket.loss_weight"], settings["shared.context"], settings["dataset.strength"]) == (0.5, 6, 0.25)


def test_a_resume_given_a_shared_setting_anew_gives_it_to_every_part_that_took_it(tmp_path):
    from scorch.contract import overrides

    assert train(tmp_path, "r", "--set", "shared.context=6", "--set", "socket.context=9") == 0
    flags = {"resume": True, "run_root": str(tmp_path), "name": "r"}
    config = overrides.resolve(flags, [("--set", "shared.context=7")])
    assert config.shared_settings == {"context": 7}
    assert config.model_settings["context"] == 7 and config.dataset_settings["context"] == 7
    assert config.socket_settings["context"] == 9  # socket.context was given: shared.context does not replace it
    unchanged = overrides.resolve(flags, [])
    assert unchanged.model_settings["context"] == 6 and unchanged.shared_settings == {"context": 6}


def test_a_sweep_over_part_settings_records_them_in_each_run(tmp_path, capsys):
    from scorch.cli.sweep import main as sweep

    args = ["--model", MODEL, "--dataset", DATASET, "--epochs", "1", "--batch-size", "16", "--no-progress",
            "--run-root", str(tmp_path), "--name", "s"]
    assert sweep([*args, "--grid", "socket.loss_wieght=0.5,2.0"]) == 2
    assert "did you mean socket.loss_weight?" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    assert sweep([*args, "--grid", "socket.loss_weight=0.5,2.0", "--grid", "shared.context=3"]) == 0
    runs = sorted(p for p in (tmp_path / "s").iterdir() if (p / "config.json").is_file())
    assert [(saved(r)["socket_settings"], saved(r)["dataset_settings"]["context"]) for r in runs] == [
        ({"loss_weight": 0.5, "context": 3}, 3), ({"loss_weight": 2.0, "context": 3}, 3)]
    summary = (tmp_path / "s" / "summary.csv").read_text()
    assert "socket.loss_weight" in summary.splitlines()[0]


def test_a_default_that_is_no_literal_stays_the_constructors_own_and_load_run_works(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(Path(MODEL).read_text().replace(
        "def __init__(self, model, loss_weight=1.0, context=4):",
        "def __init__(self, model, loss_weight=1.0, context=4, loss=nn.functional.cross_entropy, act=nn.Tanh):"))
    assert main(base_args(tmp_path, "r", "--epochs", "1", "--set", "socket.loss_weight=2.0", model=str(model),
                          dataset=DATASET)) == 0
    assert saved(tmp_path / "r")["socket_settings"] == {"loss_weight": 2.0, "context": 4}  # no function, no class
    assert scorch.load_run(tmp_path / "r").socket.raw.loss_weight == 2.0


def test_the_lm_templates_index_tells_its_network_the_vocabulary_and_the_context(tmp_path):
    from scorch.cli.init import main as init

    assert init([str(tmp_path / "lm"), "--template", "lm"]) == 0
    files = {"model": str(tmp_path / "lm" / "model.py"), "dataset": str(tmp_path / "lm" / "dataset.py")}
    assert main(base_args(tmp_path, "r", "--epochs", "1", "--max-steps", "2", "--set", "dataset.context=16", **files)) == 0
    settings = saved(tmp_path / "r")
    assert (settings["model_settings"]["context"], settings["model_settings"]["vocab"]) == (16, 28)
    assert main(base_args(tmp_path, "s", "--epochs", "1", "--max-steps", "2", "--set", "shared.context=8", **files)) == 0
    assert saved(tmp_path / "s")["model_settings"]["context"] == saved(tmp_path / "s")["dataset_settings"]["context"] == 8
