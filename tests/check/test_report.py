"""scorch-report: the settings that differ, best-by-monitor and final metrics, and a PNG of the curves."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import matplotlib.image
import pytest

from scorch.cli.report import main
from scorch.experiments import report
from tests.check.conftest import ONE_THREAD
from tests.helpers import BIN, base_args, env, scorch_train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(root: Path, name: str, config: dict, history: str) -> Path:
    run = root / name
    run.mkdir(parents=True)
    base = {"name": name, "epochs": 3, "lr": 0.001, "batch_size": 32, "seed": 0, "monitor": None, "monitor_mode": "auto",
            "overwrite": False, "progress": True}
    (run / "config.json").write_text(json.dumps({**base, **config}))
    (run / "history.csv").write_text(history)
    return run


HISTORY_A = """epoch,step,lr,time,train/loss,train/accuracy,valid/loss,valid/accuracy
1,10,0.001,0.5,1.2,0.5,0.9,0.6
2,20,0.001,0.5,0.7,0.7,0.5,0.8
3,30,0.001,0.5,0.4,0.8,0.6,0.7
"""
HISTORY_B = """epoch,step,lr,time,train/loss,train/accuracy,valid/loss,valid/accuracy
1,10,0.01,0.5,1.0,0.6,0.8,0.5
2,20,0.01,0.5,0.6,0.8,0.4,0.9
3,30,0.01,0.5,0.3,0.9,0.45,0.9
"""


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    a = make_run(tmp_path, "a", {"progress": False}, HISTORY_A)  # progress differs too, but is not a setting
    b = make_run(tmp_path, "b", {"lr": 0.01, "monitor": "valid/accuracy"}, HISTORY_B)
    return a, b


def test_table_shows_differing_settings_best_by_monitor_and_final_values(two_runs: tuple[Path, Path]) -> None:
    runs = [report.load_run(p) for p in two_runs]
    rows = report.table(runs)
    assert rows[0] == ["name", "epochs", "world", "global batch", "lr", "monitor", "best", "best epoch",
                       "train/loss", "train/accuracy", "valid/loss", "valid/accuracy"]
    # a: monitor None -> valid/loss, min -> 0.5 at epoch 2; b: valid/accuracy, max, ties -> the earliest, epoch 2
    # (no meta.json: world and global batch unknown; lr: history's)
    assert rows[1] == ["a", "3", "-", "-", "0.001", "valid/loss (min)", "0.5", "2", "0.4", "0.8", "0.6", "0.7"]
    assert rows[2] == ["b", "3", "-", "-", "0.01", "valid/accuracy (max)", "0.9", "2", "0.3", "0.9", "0.45", "0.9"]


def test_monitor_mode_and_missing_validation(tmp_path: Path) -> None:
    history = "epoch,step,lr,time,train/loss,train/err\n1,1,0.1,1,0.5,0.3\n2,2,0.1,1,0.8,0.2\n"
    maxed = report.load_run(make_run(tmp_path, "maxed", {"monitor_mode": "max"}, history))
    assert (maxed.monitor, maxed.monitor_mode, maxed.best()) == ("train/loss", "max", (2, 0.8))
    err = report.load_run(make_run(tmp_path, "err", {"monitor": "train/err"}, history))
    assert (err.monitor_mode, err.best()) == ("min", (2, 0.2))
    unfinished = report.load_run(make_run(tmp_path, "new", {"epochs": 5}, "epoch,step,lr,time,train/loss\n1,1,0.1,1,2.0\n"))
    assert report.table([unfinished])[1][:2] == ["new", "1/5"]


def test_plot_has_one_panel_per_metric_comparing_runs(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "curves.png"
    panels = report.plot([report.load_run(p) for p in two_runs], out)
    assert panels == ["loss", "accuracy", "lr"]
    assert out.read_bytes().startswith(PNG_MAGIC)
    height, width, _ = matplotlib.image.imread(out).shape
    assert width > height  # two panels side by side


def test_console_script_on_real_runs_writes_report_png_in_the_cwd(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for name, lr in (("slow", "0.001"), ("fast", "0.05")):
        proc = scorch_train(base_args(root, name, "--epochs", "2", "--lr", lr), extra_env=ONE_THREAD)
        assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([str(BIN / "scorch-report"), str(root / "slow"), str(root / "fast")], cwd=tmp_path,
                          capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    header, slow, fast = proc.stdout.splitlines()[:3]
    assert header.split()[:6] == ["name", "epochs", "world", "global", "batch", "lr"]
    assert slow.split()[:5] == ["slow", "2", "1", "32", "0.001"] and fast.split()[:5] == ["fast", "2", "1", "32", "0.05"]
    assert "valid/loss (min)" in slow
    assert proc.stdout.rstrip().endswith("scorch-report: wrote report.png (loss, accuracy, first_class, lr)")
    assert (tmp_path / "report.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    "setup, words",
    [
        ("missing", "no such directory"),
        ("no history", "no history.csv; expected a run directory written by scorch-train"),
        ("bad json", "config.json: not readable JSON"),
    ],
)
def test_invalid_run_dirs_are_one_line_and_exit_2(setup: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    if setup != "missing":
        run.mkdir()
        (run / "config.json").write_text("{" if setup == "bad json" else "{}")
        if setup == "bad json":
            (run / "history.csv").write_text(HISTORY_A)
    out = tmp_path / "r.png"
    assert main([str(run), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("scorch-report: error: ") and words in captured.err
    assert not out.exists()


def test_invalid_run_dir_from_the_console_script_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run([str(BIN / "scorch-report"), str(tmp_path / "nope")], capture_output=True, text=True, env=env(), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == f"scorch-report: error: RUN_DIR {tmp_path / 'nope'}: no such directory\n"


# ---- sweeps, --out that would replace a file, the plot's ticks, legend and panels ----------------------

def make_sweep(root: Path, names: list[str]) -> Path:
    """A sweep directory as scorch-sweep leaves it: sweep.json, configs/, logs/, summary.csv and the runs."""
    sweep = root / "sw"
    for i, name in enumerate(names):
        make_run(sweep, name, {"lr": 0.001 * (i + 1)}, HISTORY_A if i % 2 == 0 else HISTORY_B)
    (sweep / "configs").mkdir()
    (sweep / "logs").mkdir()
    (sweep / "summary.csv").write_text("name\n")
    runs = [{"index": i, "name": n, "settings": {}, "set": []} for i, n in enumerate(names)]
    (sweep / "sweep.json").write_text(json.dumps({"base_args": [], "grid": [], "runs": runs}))
    return sweep


def test_a_sweep_directory_and_a_shells_sweep_star_mean_its_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = make_sweep(tmp_path, ["00-lr=0.001", "01-lr=0.002"])
    assert main([str(sweep), "--out", str(tmp_path / "a.png")]) == 0
    whole = capsys.readouterr().out
    assert [line.split()[0] for line in whole.splitlines()[1:3]] == ["00-lr=0.001", "01-lr=0.002"]
    star = sorted(str(p) for p in sweep.iterdir())  # what `scorch-report runs/SWEEP/*` is given
    assert main([*star, "--out", str(tmp_path / "b.png")]) == 0
    assert capsys.readouterr().out.splitlines()[:3] == whole.splitlines()[:3]


@pytest.mark.parametrize("target, words", [
    ("history", "expected a file name ending in .png"),
    ("directory", "is a directory"),
    ("their png", "exists and was not written by scorch-report"),
])
def test_out_never_replaces_a_file_scorch_report_did_not_write(target: str, words: str, two_runs: tuple[Path, Path],
                                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = {"history": two_runs[0] / "history.csv", "directory": two_runs[0], "their png": tmp_path / "photo.png"}[target]
    if target == "their png":
        matplotlib.image.imsave(out, [[0.0, 1.0], [1.0, 0.0]])
    before = snapshot_of(tmp_path)
    assert main([str(p) for p in two_runs] + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("scorch-report: error: --out ") and words in err
    assert snapshot_of(tmp_path) == before


def test_out_replaces_its_own_png(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.png"
    assert main([str(two_runs[0]), "--out", str(out)]) == 0
    assert report.png_software(out) == "scorch-report"
    first = out.read_bytes()
    assert main([str(p) for p in two_runs] + ["--out", str(out)]) == 0
    assert out.read_bytes() != first


def snapshot_of(directory: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_plot_ticks_legend_and_no_counter_panels(tmp_path: Path) -> None:
    history = HISTORY_A.replace("valid/accuracy\n", "valid/accuracy,skipped_steps\n").replace("0.7\n", "0.7,0\n") \
        .replace("0.8\n", "0.8,1\n").replace("0.6\n", "0.6,1\n")
    few = [report.load_run(make_run(tmp_path, f"r{i}", {"seed": i}, history)) for i in range(2)]
    fig, bases = report.figure(few)
    assert bases == ["loss", "accuracy", "lr"]  # skipped_steps is a count, not a metric
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert ax.get_legend() is not None and not fig.legends  # 2 runs: the legend inside the panel
    many = few + [report.load_run(make_run(tmp_path, f"m{i}", {"seed": 10 + i}, HISTORY_B)) for i in range(4)]
    fig, _ = report.figure(many)
    assert all(a.get_legend() is None for a in fig.axes) and len(fig.legends) == 1  # 6 runs: one, outside
    assert "skipped_steps" in report.table(few)[0]  # still in the table


def test_world_global_batch_the_lr_used_one_column_per_model_setting_and_an_lr_panel(tmp_path: Path) -> None:
    """A Socket.optimizer at 3e-3 is the lr shown, not --lr's unused default; model settings are
    columns of their own, as scorch-sweep's summary shows them."""
    from scorch.cli.train import main as train
    from tests.helpers import FIXTURES
    model = str(FIXTURES / "own_optimizer_model.py")
    for name, extra in (("narrow", ["--set", "model.width=8"]), ("wide", ["--set", "model.width=32", "--accumulate", "2"])):
        assert train(base_args(tmp_path, name, "--epochs", "2", "--batch-size", "16", *extra, model=model)) == 0
    runs = [report.load_run(tmp_path / name) for name in ("narrow", "wide")]
    header, narrow, wide = report.table(runs)
    assert header[:7] == ["name", "epochs", "world", "global batch", "lr", "accumulate", "model.width"]
    assert narrow[:7] == ["narrow", "2", "1", "16", "0.003", "1", "8"]
    assert wide[:7] == ["wide", "2", "1", "32", "0.003", "2", "32"]
    fig, panels = report.figure(runs)
    assert panels[-1] == "lr"
    lr_axes = fig.axes[len(panels) - 1]
    assert lr_axes.get_title() == "lr" and [list(line.get_ydata()) for line in lr_axes.get_lines()] == [[0.003] * 2] * 2


def test_a_changing_lr_and_a_run_without_meta_json(tmp_path: Path) -> None:
    history = "epoch,step,lr,time,train/loss\n1,1,0.1,1,0.5\n2,2,0.01,1,0.4\n"
    run = report.load_run(make_run(tmp_path, "decay", {"model_settings": {"width": 4}}, history))
    assert report.table([run])[1][:5] == ["decay", "2/3", "-", "-", "0.1→0.01"]
