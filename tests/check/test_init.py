"""scorch-init: writes working, commented templates; never overwrites without --force."""
from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest

from scorch import check
from scorch.cli.init import FILES, main, template
from tests.check.conftest import ONE_THREAD
from tests.helpers import BIN, REPO, env, scorch_train


def test_writes_the_packaged_templates_and_they_pass_every_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "new project"  # created, and a space in the path
    assert main([str(target)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"scorch-init: wrote {target / 'model.py'} and {target / 'dataset.py'}"
    assert f"scorch-check --model '{target / 'model.py'}' --dataset '{target / 'dataset.py'}'" in out
    for name in FILES:
        assert (target / name).read_text() == template(name) == (REPO / "scorch" / "templates" / name).read_text()
    results = check.run_all(check.open_files(str(target / "model.py"), str(target / "dataset.py")))
    assert [r.name for r in results if not r.ok] == []


def test_templates_are_commented() -> None:
    for name in FILES:
        text = template(name)
        assert text.startswith('"""') and text.count("\n#") + text.count("    #") >= 5, name


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
    assert "templates/*.py" in config["tool"]["setuptools"]["package-data"]["scorch"]
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
