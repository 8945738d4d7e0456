"""The scorch-gen command line: main([...]) and the installed console script."""
from __future__ import annotations

import math
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scorch.gen import UNASSIGNED
from scorch.gen._store import read_chunk

from .conftest import BIN, TEST_DATASETS, assert_consistent, cli, console, only_param_set


def _times(ps) -> np.ndarray:
    return np.concatenate([read_chunk(p, ("time",))["time"] for p in ps.all_chunk_paths()])


def _one_error_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_full_workflow_through_the_console_script(gen_dir: Path):
    r = console("generate", "seq", "-n", "90", "--jobs", "3", "--local", "--time", "5", gen_dir=gen_dir)
    assert r.returncode == 0, r.stderr
    assert "generated 90 samples of seq (defaults)" in r.stdout
    r = console("generate", "seq", "-n", "20", "-njobs", "2", "--local", "--time", "5",
                "--params", "{'offset': 1.5, 'width': 2}", gen_dir=gen_dir)
    assert r.returncode == 0, r.stderr
    assert console("move", "seq", "50", "train", gen_dir=gen_dir).returncode == 0
    r = console("move", "seq", "15", "test", "--params", "{'width': 2, 'offset': 1.5}", gen_dir=gen_dir)
    assert r.returncode == 0 and "15 in 'test', 5 unassigned" in r.stdout, r.stdout + r.stderr
    r = console("list", gen_dir=gen_dir)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["dataset", "#", "id", "parameters", "unassigned", "test", "train", "compute"]
    cache = counts_from_files(gen_dir)
    for line in lines[1:]:
        cells = line.split()
        pid = cells[2]
        counts = cache[pid]
        assert [int(c) for c in cells[-4:-1]] == [counts.get(g, 0) for g in (UNASSIGNED, "test", "train")]
    assert "(defaults)" in lines[1] and "offset=1.5, width=2" in lines[2]


def counts_from_files(gen_dir: Path) -> dict[str, dict[str, int]]:
    """Counts per parameter id, from the chunk files' own contents."""
    out = {}
    for psdir in (gen_dir / "gen_cache" / "seq").iterdir():
        counts = {}
        for path in psdir.rglob("*.npz"):
            if {"claims", "tmp"} & set(path.relative_to(psdir).parts):
                continue
            group = path.parent.name
            counts[group] = counts.get(group, 0) + len(read_chunk(path, ("uid",))["uid"])
        out[psdir.name] = counts
    return out


def test_list_compute_time_is_the_sum_of_sample_times(gen_dir: Path, capsys):
    assert cli("generate", "seq", "-n", "20", "--jobs", "1", "--local", "--time", "5",
               "--params", "{'delay': 0.05}", gen_dir=gen_dir) == 0
    capsys.readouterr()
    assert cli("list", gen_dir=gen_dir) == 0
    shown = capsys.readouterr().out.splitlines()[1].split()[-1]
    total = _times(only_param_set(gen_dir)).sum()
    assert total >= 1.0 and shown == f"{total:.2f}s"


def test_need_reports_missing_samples_and_time(gen_dir: Path, capsys):
    assert cli("generate", "seq", "-n", "40", "--jobs", "2", "--local", "--time", "5",
               "--params", "{'delay': 0.002}", gen_dir=gen_dir) == 0
    assert cli("move", "seq", "15", "train", "--params", "{'delay': 0.002}", gen_dir=gen_dir) == 0
    capsys.readouterr()
    assert cli("need", "seq", "1000", "--group", "train", "--jobs", "7",
               "--params", "{'delay': 0.002}", gen_dir=gen_dir) == 0
    out = capsys.readouterr().out
    times = _times(only_param_set(gen_dir))
    missing = 1000 - 15 - 25
    per_job = math.ceil(missing / 7)
    minutes = math.ceil(((times.mean() + 3 * times.std()) * per_job + 60) / 60)
    assert "group 'train' has 15 of 1000; 25 unassigned" in out
    assert "move 25 unassigned: scorch-gen move seq 25 train --params" in out
    assert f"need {missing} more samples" in out
    assert f"mean {times.mean():.4g} s/sample over 40 samples" in out
    assert f"job time: {minutes} min per job with --jobs 7 ({per_job} samples per job)" in out
    assert f"scorch-gen generate seq -n {missing} --jobs 7" in out
    # The printed commands work from anywhere: they name the directory (quoted: it has a space).
    generate_line = next(line for line in out.splitlines() if line.startswith("generate: "))
    argv = shlex.split(generate_line[len("generate: "):])
    assert argv[-2:] == ["--dir", str(gen_dir)] and argv[argv.index("--params") + 1] == "{'delay': 0.002}"
    assert f"move seq 25 train --params \"{{'delay': 0.002}}\" --dir '{gen_dir}'" in out


def test_need_without_history_and_when_enough(gen_dir: Path, capsys):
    assert cli("need", "seq", "10", "--group", "train", gen_dir=gen_dir) == 0
    out = capsys.readouterr().out
    assert "need 10 more samples" in out and "unknown" in out and "--time" in out
    assert not (gen_dir / "gen_cache").exists()


def test_first_generate_without_time_is_an_error_and_creates_nothing(gen_dir: Path, capsys):
    assert cli("generate", "seq", "-n", "10", "--local", gen_dir=gen_dir) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert "no recorded sample times for seq (defaults)" in err and "--time MINUTES" in err
    assert not (gen_dir / "gen_cache").exists()


def test_generate_without_time_uses_history(gen_dir: Path, capsys):
    assert cli("generate", "seq", "-n", "20", "--local", "--time", "1", gen_dir=gen_dir) == 0
    assert cli("generate", "seq", "-n", "20", "--jobs", "2", "--local", gen_dir=gen_dir) == 0
    assert only_param_set(gen_dir).count(UNASSIGNED) == 40


@pytest.mark.parametrize("args, message", [
    (["generate", "seq", "-n", "10", "--time", "1", "--params", "{'ofset': 1}"],
     "unknown parameter(s) ofset for SeqParams; valid: delay, offset, width"),
    (["generate", "seq", "-n", "10", "--time", "1", "--params", "{'offset': 'x'}"],
     "parameter 'offset' of SeqParams: got 'x' (str), expected float"),
    (["generate", "seq", "-n", "10", "--time", "1", "--params", "{'offset': 1"],
     "--params: \"{'offset': 1\" is not a Python literal dict"),
    (["generate", "nope", "-n", "10", "--time", "1"], "no dataset 'nope' in "),
    (["generate", "seq", "-n", "0", "--time", "1"], "-n 0: expected a positive number"),
    (["generate", "seq", "-n", "5", "--time", "0"], "--time 0: expected whole minutes >= 1"),
    (["generate", "seq", "-n", "x"], "argument -n: invalid int value: 'x'"),
    (["move", "seq", "5", "bad/name"], "group 'bad/name': expected letters"),
    (["move", "seq", "5", "train"], "no samples of seq (defaults)"),
    (["need", "seq", "5"], "the following arguments are required: --group"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["generate", "seq", "-n", "5", "--time", "1", "--local", "--max-parallel", "0"],
     "--max-parallel 0: expected a whole number >= 1 (leave it out for one process per CPU)"),
    (["generate", "seq", "-n", "5", "--time", "1", "--slurm-options=--time=abc"],
     "--slurm-options: 'abc' is not a SLURM time"),
    (["generate", "seq", "-n", "5", "--time", "1", "--slurm-options=--mem=lots"],
     "--slurm-options: 'lots' is not a SLURM memory size"),
    (["generate", "seq", "-n", "5", "--time", "1", "--slurm-options=qos=high"], "is not an sbatch option"),
    (["generate", "seq", "-n", "5", "--time", "1", "--slurm-options='--qos"], "--slurm-options: "),
    (["move", "seq", "0", "train"], "move N=0: expected a number of samples >= 1"),
    (["need", "seq", "-1", "--group", "train"], "need N=-1: expected a number of samples >= 0"),
])
def test_bad_input_is_one_line_and_exit_2(gen_dir: Path, capsys, args, message):
    assert cli(*args, gen_dir=gen_dir) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert err.startswith("scorch-gen") and message in err, err
    assert not (gen_dir / "gen_cache").exists()


def test_bad_input_through_console_script_and_debug_traceback(gen_dir: Path):
    r = console("generate", "seq", "-n", "10", "--time", "1", "--params", "{'ofset': 1}", gen_dir=gen_dir)
    assert r.returncode == 2 and r.stdout == ""
    _one_error_line(r.stderr)
    r = console("generate", "seq", "-n", "10", "--time", "1", "--params", "{'ofset': 1}", "--debug",
                gen_dir=gen_dir)
    assert r.returncode == 2 and "Traceback" in r.stderr and "ofset" in r.stderr.splitlines()[-1]


def test_missing_datasets_file(tmp_path: Path, capsys):
    assert cli("list", gen_dir=tmp_path) == 0  # nothing cached yet: an empty table is fine
    assert "no samples yet" in capsys.readouterr().out
    assert cli("generate", "x", "-n", "1", "--time", "1", gen_dir=tmp_path) == 2
    assert f"no datasets.py in {tmp_path}" in capsys.readouterr().err


def test_failing_generator_exits_1_and_points_at_the_log(gen_dir: Path, capsys):
    (gen_dir / "datasets.py").write_text(
        "import scorch.gen\nclass P(scorch.gen.Params):\n    a = 1\n"
        "@scorch.gen.generator(5, P)\ndef bad(size, params):\n"
        "    yield 1.0, 2.0\n    yield object(), 1.0\n")
    assert cli("generate", "bad", "-n", "4", "--jobs", "2", "--local", "--time", "1", gen_dir=gen_dir) == 1
    err = _one_error_line(capsys.readouterr().err)
    log = Path(re.search(r"see (\S.*\.log)$", err.strip()).group(1))
    assert "2 of 2 local jobs failed" in err and "dtype object" in log.read_text()
    assert only_param_set(gen_dir, "bad").count(UNASSIGNED) == 0


def test_a_directory_with_a_control_character_is_refused_for_slurm(tmp_path: Path, capsys):
    d = tmp_path / "gen\ndir"
    d.mkdir()
    (d / "datasets.py").write_text(TEST_DATASETS)
    assert cli("generate", "seq", "-n", "5", "--time", "1", gen_dir=d) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert "--dir: " in err and "holds a control character ('\\n')" in err
    assert not (d / "gen_cache").exists()
    assert cli("generate", "seq", "-n", "5", "--time", "1", "--local", gen_dir=d) == 0  # no script: no harm


def test_module_entry_point(gen_dir: Path):
    r = subprocess.run([sys.executable, "-m", "scorch.cli.gen", "list", "--dir", str(gen_dir)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "no samples yet" in r.stdout


def test_a_stopped_local_generate_keeps_what_its_jobs_saved(gen_dir: Path):
    """SIGINT to scorch-gen: no new job starts, the running ones get SIGUSR1 and save the samples
    they finished as a smaller chunk; one line says so (exit 1)."""
    proc = subprocess.Popen([str(BIN / "scorch-gen"), "generate", "seq", "-n", "900", "--jobs", "3", "--local",
                             "--max-parallel", "2", "--time", "5", "--params", "{'delay': 0.05}", "--dir", str(gen_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while len(list(gen_dir.glob(f"gen_cache/seq/*/{UNASSIGNED}/*.npz"))) < 2:
        assert time.monotonic() < deadline and proc.poll() is None, "the jobs wrote no chunks"
        time.sleep(0.05)
    time.sleep(0.25)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    # A warning when the signal came, then the one error line.
    assert err.splitlines()[-1].startswith("scorch-gen: error: stopped by SIGINT: 0 of 3 local jobs finished"), err
    assert "SIGINT: no new jobs" in err.splitlines()[0] and len(err.splitlines()) == 2
    ps = only_param_set(gen_dir)
    sizes = sorted(n for _, n in ps.chunks(UNASSIGNED))
    assert sizes[0] < 10 and assert_consistent(ps) == sum(sizes) < 900
    logs = sorted(p.name.rsplit("-", 1)[1] for p in ps.logs.glob("local-*.log"))
    assert logs == ["0.log", "1.log"]  # the third job never started
