"""scorch-init: writes working, commented templates; never overwrites without --force."""
from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest

from scorch import check
from scorch.cli.init import FILES, TEMPLATES, main, template
from scorch.cli.train import main as train
from tests.check.conftest import ONE_THREAD
from tests.helpers import BIN, REPO, env, scorch_train


def test_writes_the_packaged_templates_and_they_pass_every_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "new project"  # created, and a space in the path
    assert main([str(target)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"scorch-init: wrote {target / 'model.py'} and {target / 'dataset.py'} (template mlp)"
    assert f"scorch-check --model '{target / 'model.py'}' --dataset '{target / 'dataset.py'}'" in out
    for name in FILES:
        assert (target / name).read_text() == template(name) == (REPO / "scorch" / "templates" / "mlp" / name).read_text()
    results = check.run_all(check.open_files(str(target / "model.py"), str(target / "dataset.py")))
    assert [r.name for r in results if not r.ok] == []


def test_templates_are_commented() -> None:
    for kind in TEMPLATES:
        texts = [template(name, kind) for name in FILES]
        assert all(t.startswith('"""') for t in texts) and sum(t.count("\n#") + t.count("    #") for t in texts) >= 5, kind


def test_console_script_output_trains_out_of_the_box(tmp_path: Path) -> None:
    proc = subprocess.run([str(BIN / "scorch-init"), str(tmp_path / "proj")], capture_output=True, text=True, env=env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    model, dataset = tmp_path / "proj" / "model.py", tmp_path / "proj" / "dataset.py"
    train = scorch_train(["--model", str(model), "--dataset", str(dataset), "--epochs", "2", "--run-root", str(tmp_path / "runs"),
                          "--name", "tpl", "--no-progress"], extra_env=ONE_THREAD)
    assert train.returncode == 0, train.stderr
    rows = list(csv.DictReader((tmp_path / "runs" / "tpl" / "history.csv").read_text().splitlines()))
    assert len(rows) == 2
    assert float(rows[-1]["valid/accuracy"]) > 0.6  # 4 classes: chance is 0.25


def test_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model.py").write_text("# mine\n")
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"scorch-init: error: {tmp_path / 'model.py'} already exists; give --force to overwrite\n"
    assert (tmp_path / "model.py").read_text() == "# mine\n"
    assert not (tmp_path / "dataset.py").exists()  # nothing written at all
    assert main([str(tmp_path), "--force"]) == 0
    assert (tmp_path / "model.py").read_text() == template("model.py")


def test_refusal_from_the_console_script_exits_2(tmp_path: Path) -> None:
    for name in FILES:
        (tmp_path / name).write_text("# mine\n")
    proc = subprocess.run([str(BIN / "scorch-init"), str(tmp_path)], capture_output=True, text=True, env=env(), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "already exist; give --force" in proc.stderr
    assert all((tmp_path / name).read_text() == "# mine\n" for name in FILES)


def test_a_file_in_the_way_of_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("")
    assert main([str(tmp_path / "f")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_templates_are_package_data() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "templates/*/*.py" in config["tool"]["setuptools"]["package-data"]["scorch"]
    assert sorted(p.name for p in (REPO / "scorch" / "templates").iterdir() if p.is_dir() and p.name != "__pycache__") \
        == sorted(TEMPLATES)
    assert config["project"]["scripts"]["scorch-init"] == "scorch.cli.init:console_main"


@pytest.mark.parametrize("target, words", [
    ("", ["DIR", "use . for the current one"]),
    ("new\nproject", ["DIR", "control character"]),
    ("x" * 300, ["DIR", "longer than 255 bytes"]),
])
def test_a_dir_no_file_system_takes_is_refused(target: str, words: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # '' would have meant the current directory
    assert main([target]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("scorch-init: error: DIR: "), err
    for word in words:
        assert word in err[0]
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kind", list(TEMPLATES))
def test_every_template_trains_a_few_steps_and_passes_every_check(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / kind), "--template", kind]) == 0
    files = ["--model", str(tmp_path / kind / "model.py"), "--dataset", str(tmp_path / kind / "dataset.py")]
    assert train([*files, "--run-root", str(tmp_path / "runs"), "--name", kind, "--no-progress", "--epochs", "1",
                  "--max-steps", "3", "--batch-size", "16", "--logger", "csv"]) == 0, capsys.readouterr().err
    (row,) = list(csv.DictReader((tmp_path / "runs" / kind / "history.csv").read_text().splitlines()))
    assert row["step"] == "3" and 0 < float(row["valid/loss"]) < 10
    if kind != "mlp":  # the mlp's checks: test_writes_the_packaged_templates_and_they_pass_every_check
        results = check.run_all(check.open_files(files[1], files[3]))
        assert [r.name for r in results if not r.ok] == []


def test_the_finetune_templates_backbone_is_frozen_and_the_cnn_template_augments(tmp_path: Path) -> None:
    import importlib.util

    import torch

    def load(kind: str, name: str):
        spec = importlib.util.spec_from_file_location(f"tpl_{kind}_{name}", REPO / "scorch" / "templates" / kind / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    net = load("finetune", "model").Network()
    socket = load("finetune", "model").Socket(net)
    trainable = {id(p) for p in socket.trainable_modules.parameters()}
    assert trainable == {id(p) for p in net.head.parameters()}
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in net.backbone.modules())
    cnn = load("cnn", "dataset")
    index = cnn.DataSetIndex()
    torch.manual_seed(0)
    train_a, train_b = cnn.DataSet(index, "train")[0][0][0], cnn.DataSet(index, "train")[0][0][0]
    valid = cnn.DataSet(index, "valid")
    assert not torch.equal(train_a, train_b)  # a fresh draw each time
    assert torch.equal(valid[0][0][0], valid[0][0][0])  # validation is not augmented


def test_template_list_and_an_unknown_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--template", "list"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {kind} " in out for kind in TEMPLATES)
    assert main([str(tmp_path / "p"), "--template", "resnet"]) == 2
    assert capsys.readouterr().err == ("scorch-init: error: --template 'resnet': no such template; expected one of "
                                       "mlp, cnn, lm, finetune (or list)\n")
    assert not (tmp_path / "p").exists()
