"""scorch-check: every check passes on good files; each broken file fails exactly the check meant to catch it."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scorch import check
from scorch.cli.check import main
from scorch.errors import EXIT_FAILURE, Failure, ScorchError
from tests.check.conftest import ONE_THREAD
from tests.helpers import BIN, DATASET, DIGITS_DATASET, DIGITS_MODEL, MODEL, env

HERE = Path(__file__).resolve().parent / "fixtures"
GOOD_MODEL = Path(MODEL).read_text()
GOOD_DATASET = Path(DATASET).read_text()

ALL_CHECKS = [
    "dataset.index", "dataset.mode.train", "dataset.mode.valid", "dataset.mode.test", "dataset.lengths",
    "dataset.items", "dataset.consistency", "dataset.collate",
    "model.network", "model.socket", "model.trainable", "model.forward", "model.criterion", "model.metrics",
    "model.gradients", "model.optimizer", "model.scheduler", "model.frozen", "train.overfit", "checkpoint.roundtrip",
]


def scorch_check(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    return subprocess.run([str(BIN / "scorch-check"), *args], capture_output=True, text=True, timeout=300, env={**env(), **ONE_THREAD})


def by_status(results: list[check.CheckResult], status: str) -> list[str]:
    return [r.name for r in results if r.status == status]


def run_files(model: str, dataset: str) -> list[check.CheckResult]:
    return check.run_all(check.open_files(model, dataset))


def lines(out: str) -> dict[str, tuple[str, str]]:
    """scorch-check's stdout as name -> (STATUS, detail)."""
    table = {}
    for line in out.splitlines():
        if line.startswith(("PASS", "FAIL", "SKIP")):
            status, name, detail = line.split(None, 2)
            table[name] = (status, detail)
    return table


def test_digits_example_passes_every_check_as_a_console_script() -> None:
    proc = scorch_check("--model", DIGITS_MODEL, "--dataset", DIGITS_DATASET)
    assert proc.returncode == 0, proc.stderr
    table = lines(proc.stdout)
    at = ALL_CHECKS.index("model.metrics") + 1  # the digits' Socket has split_metrics and visualize
    assert list(table) == [*ALL_CHECKS[:at], "model.split_metrics", "model.visualize", *ALL_CHECKS[at:]]
    assert {status for status, _ in table.values()} == {"PASS"}
    assert "inputs [(8, 1, 8, 8)], targets [(8,)]" in table["dataset.collate"][1]
    assert "[(8, 10)]" in table["model.forward"][1]
    assert table["model.visualize"] == ("PASS", "1 image (digits (8, 64)), 1 text (target:guess)")
    assert proc.stdout.splitlines()[-1] == "scorch-check: 22 passed, 0 failed, 0 skipped"
    assert proc.stderr == ""


def test_in_process_main_reports_one_line_per_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", MODEL, "--dataset", DATASET]) == 0
    out = capsys.readouterr().out
    table = lines(out)
    assert list(table) == ALL_CHECKS
    assert table["model.trainable"] == ("PASS", "4 tensors (131 of 151 parameters) are trained; frozen: frozen.weight, frozen.bias; "
                                                "in eval mode while training (frozen modules): frozen")
    assert table["model.frozen"] == ("PASS", "2 frozen tensors unchanged after 3 optimizer steps")


def test_results_are_deterministic() -> None:
    first, second = run_files(MODEL, DATASET), run_files(MODEL, DATASET)
    assert first == second
    overfit = next(r for r in first if r.name == "train.overfit")
    assert overfit.ok and "after 200 Adam steps on one batch of 8" in overfit.detail


def test_session_keeps_what_notebooks_show() -> None:
    session = check.open_files(MODEL, DATASET)
    check.run_all(session)
    assert set(session.datasets) == {"train", "valid", "test"}
    assert [i for i, _, _ in session.samples["test"]] == list(range(10))  # 10 items: all of them
    assert len(session.samples["train"]) == 16 and session.samples["train"][-1][0] == 63  # spread, last included
    assert tuple(session.batch[0][0].shape) == (8, 4)
    assert len(session.curve) == 200 and session.curve[-1] < session.curve[0] / 5
    assert set(session.metrics) == {"accuracy", "first_class"}
    check.check_dataset(session)  # run again, as a notebook cell may be: results are replaced, not added
    assert [r.name for r in session.results] == ALL_CHECKS


# name: (model file, dataset file, the checks that must fail, the checks that must be skipped, words of the failure)
BROKEN_FILES = {
    "trainable params detached in forward": (
        HERE / "detached_model.py", DATASET, ["model.gradients"], ["model.frozen", "train.overfit"],
        ["no gradient reached 2 of 4 trainable tensors", "body.0.weight", "torch.no_grad()"]),
    "frozen param changed by the optimizer hook": (
        HERE / "unfreezing_model.py", DATASET, ["model.frozen"], [],
        ["frozen parameters changed after 3 optimizer steps: stem.weight, stem.bias"]),
    "lr 0 via Socket.optimizer cannot overfit": (
        HERE / "lr0_model.py", DATASET, ["train.overfit"], [],
        ["after 200 SGD steps", "(down 0%)", "expected down by at least 80%"]),
    "state in a plain tensor attribute": (
        HERE / "plain_tensor_model.py", DATASET, ["checkpoint.roundtrip"], [],
        ["predicts differently", "register_buffer"]),
    "items of inconsistent shapes": (
        MODEL, HERE / "ragged_dataset.py", ["dataset.consistency"],
        ["dataset.collate", "model.forward", "model.criterion", "model.metrics", "model.gradients", "model.frozen", "train.overfit"],
        ["DataSet(mode='train')[21] inputs[0] is tensor float32 (5,) but train[0] inputs[0] is tensor float32 (4,)"]),
}


@pytest.mark.parametrize("case", list(BROKEN_FILES))
def test_broken_files_fail_exactly_their_check(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    model, dataset, failed, skipped, words = BROKEN_FILES[case]
    assert main(["--model", str(model), "--dataset", str(dataset)]) == 1
    table = lines(capsys.readouterr().out)
    assert list(table) == ALL_CHECKS
    assert [n for n, (s, _) in table.items() if s == "FAIL"] == failed
    assert [n for n, (s, _) in table.items() if s == "SKIP"] == skipped
    for word in words:
        assert word in table[failed[0]][1]


def test_a_failure_from_the_console_script_exits_1() -> None:
    proc = scorch_check("--model", str(HERE / "detached_model.py"), "--dataset", DATASET)
    assert proc.returncode == 1, proc.stderr
    table = lines(proc.stdout)
    assert table["model.gradients"][0] == "FAIL"
    assert table["train.overfit"] == ("SKIP", "model.gradients failed")
    assert proc.stdout.splitlines()[-1] == "scorch-check: 17 passed, 1 failed, 2 skipped"


def test_a_failed_check_is_one_of_scorchs_errors_with_the_failure_code() -> None:
    failed = check.CheckFailed("model.py: non-finite gradients")
    assert isinstance(failed, Failure) and failed.exit_code == EXIT_FAILURE  # as scorch-check exits on one


def _write(tmp_path: Path, name: str, text: str, old: str, new: str) -> str:
    assert old in text, old
    path = tmp_path / name
    path.write_text(text.replace(old, new))
    return str(path)


# name: (file, text to replace, replacement, failing check, skipped checks, words of the failure)
EDITS = {
    "forward returns a tensor": (
        "model", "return [self.body(x + 0.0 * self.frozen(x))]", "return self.body(x)", "model.forward",
        ["model.criterion", "model.metrics", "model.gradients", "model.frozen", "train.overfit"],
        ["Network.forward returned tensor of shape (8, 3)", "expected a non-empty list"]),
    "criterion is not a scalar": (
        "model", "cross_entropy(preds[0], targets[0])", "cross_entropy(preds[0], targets[0], reduction='none')",
        "model.criterion", ["model.metrics", "model.gradients", "model.frozen", "train.overfit"],
        ["Socket.criterion returned tensor of shape (8,)", "expected a scalar tensor"]),
    "metrics are not numbers": (
        "model", 'return {"accuracy": correct.mean(), "first_class": (targets[0] == 0).float().mean().item()}',
        'return {"accuracy": "high"}', "model.metrics", [], ["Socket.metrics: metric 'accuracy' is a str"]),
    "Network() raises": (
        "model", "super().__init__()", "super().__init__(); raise ValueError('no GPU here')", "model.network",
        ["model.socket", "model.trainable", "model.forward", "model.criterion", "model.metrics", "model.gradients",
         "model.optimizer", "model.scheduler", "model.frozen", "train.overfit", "checkpoint.roundtrip"],
        ["Network.__init__ raised ValueError: no GPU here"]),
    "no trainable parameters": (
        "model", "nn.ModuleList([model.body])", "nn.ModuleList([])", "model.trainable",
        ["model.forward", "model.criterion", "model.metrics", "model.gradients", "model.optimizer", "model.scheduler",
         "model.frozen", "train.overfit", "checkpoint.roundtrip"],
        ["Socket.trainable_modules has no parameters to train"]),
    "scheduler hook returns garbage": (
        "model", "    def metrics(self, preds, targets):",
        "    def scheduler(self, optimizer):\n        return 0.5\n\n    def metrics(self, preds, targets):",
        "model.scheduler", [], ["Socket.scheduler returned float, expected an LR scheduler or None"]),
    "test mode does not construct": (
        "dataset", "self.index, self.ids = ds_index, ds_index.ranges[mode]",
        "assert mode != 'test', 'no test split yet'; self.index, self.ids = ds_index, ds_index.ranges[mode]",
        "dataset.mode.test", [], ["DataSet.__init__(mode='test') raised AssertionError: no test split yet"]),
    "empty train split": (
        "dataset", '"train": 64', '"train": 0', "dataset.lengths",
        ["dataset.items", "dataset.consistency", "dataset.collate", "model.forward", "model.criterion", "model.metrics",
         "model.gradients", "model.frozen", "train.overfit"],
        ["DataSet(mode='train') has no samples"]),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_contract_breaks_fail_their_check_and_skip_what_depends_on_it(case: str, tmp_path: Path) -> None:
    which, old, new, failing, skipped, words = EDITS[case]
    model = _write(tmp_path, "model.py", GOOD_MODEL, old, new) if which == "model" else MODEL
    dataset = _write(tmp_path, "dataset.py", GOOD_DATASET, old, new) if which == "dataset" else DATASET
    results = run_files(model, dataset)
    assert [r.name for r in results] == ALL_CHECKS
    assert by_status(results, check.FAIL) == [failing]
    assert by_status(results, check.SKIP) == skipped
    detail = next(r.detail for r in results if r.name == failing)
    for word in words:
        assert word in detail
    assert check.exit_code(results) == 1


@pytest.mark.parametrize(
    "args, words",
    [
        (["--model", "missing.py", "--dataset", DATASET], ["--model: file not found: 'missing.py'"]),
        (["--model", MODEL, "--dataset", "missing.py"], ["--dataset: file not found: 'missing.py'"]),
        (["--model", MODEL, "--dataset", DATASET, "--steps", "0"], ["--steps: expected a whole number >= 1"]),
        (["--model", MODEL], ["--dataset is required (or 'dataset:' in --config)"]),  # --config may name the files
    ],
)
def test_unusable_input_is_one_line_and_exit_2(args: list[str], words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("scorch-check: error: ")
    for word in words:
        assert word in captured.err


def test_a_model_file_that_does_not_import_exits_2_from_the_console_script(tmp_path: Path) -> None:
    bad = tmp_path / "model.py"
    bad.write_text("import torch\ndef broken(:\n")
    proc = scorch_check("--model", str(bad), "--dataset", DATASET)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"scorch-check: error: {bad}: importing the model file failed: SyntaxError: " + proc.stderr.split("SyntaxError: ", 1)[1].strip()
    ]


def test_options_name_the_flag_to_change() -> None:
    with pytest.raises(ScorchError, match="--min-drop"):
        check.CheckOptions(min_drop=1.5)
    with pytest.raises(ScorchError, match="--lr"):
        check.CheckOptions(lr=0)


def test_sample_indices_spread_over_the_set() -> None:
    assert check.sample_indices(5, 16) == [0, 1, 2, 3, 4]
    assert check.sample_indices(100, 3) == [0, 50, 99]
    assert check.sample_indices(100, 1) == [0]
