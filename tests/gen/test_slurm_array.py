"""A real SLURM job array generates samples (private cluster from tests/slurm_fixture.py)."""
from __future__ import annotations

import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from scorch.gen import Cache
from scorch.gen._store import UNASSIGNED, read_chunk

from .conftest import EXAMPLE_DATASETS, TEST_DATASETS, all_uids, assert_consistent, cli, console, only_param_set

pytestmark = pytest.mark.slow


@pytest.fixture
def slurm_gen_dir(tmp_path: Path, slurm, monkeypatch) -> Path:
    """A datasets.py dir whose path has a space and a quote; SLURM_CONF set for in-process main()."""
    d = tmp_path / "it's a gen dir"
    d.mkdir()
    (d / "datasets.py").write_text(TEST_DATASETS)
    for key in ("SLURM_CONF", "PATH"):
        monkeypatch.setenv(key, slurm.env[key])
    return d


def _job_id(out: str) -> str:
    return re.search(r"submitted SLURM job array (\d+):", out).group(1)


def _time_limit_minutes(slurm, job_id: str) -> set[int]:
    text = slurm.run(["scontrol", "-o", "show", "job", job_id]).stdout
    limits = set()
    for value in re.findall(r"TimeLimit=(\S+)", text):
        h, m, s = (int(x) for x in value.split(":"))
        limits.add(h * 60 + m + (1 if s else 0))
    return limits


def test_job_array_generates_samples(slurm, slurm_gen_dir: Path, capsys):
    assert cli("generate", "seq", "-n", "75", "--jobs", "3", "--time", "3", gen_dir=slurm_gen_dir) == 0
    job = _job_id(capsys.readouterr().out)
    assert slurm.wait_job(job, timeout=180) == "COMPLETED"
    assert _time_limit_minutes(slurm, job) == {3}
    ps = only_param_set(slurm_gen_dir)
    assert ps.count(UNASSIGNED) == 75 and assert_consistent(ps) == 75
    assert len({u.rsplit("-", 1)[0] for u in all_uids(ps)}) == 3  # three array tasks wrote
    logs = sorted(p.name for p in ps.logs.glob(f"{job}_*.out"))
    assert logs == [f"{job}_{i}.out" for i in range(3)]
    X, _ = Cache(slurm_gen_dir)["seq"][0][UNASSIGNED].get(75)
    assert sorted(X[:, 0].tolist()) == sorted([float(i) for i in range(25)] * 3)

    # Without --time: mean + 3 sd of the recorded per-sample times, x samples per job, + 1 min.
    times = np.concatenate([read_chunk(p, ("time",))["time"] for p in ps.all_chunk_paths()])
    expected = math.ceil(((times.mean() + 3 * times.std()) * 50 + 60) / 60)
    r = console("generate", "seq", "-n", "100", "--jobs", "2", gen_dir=slurm_gen_dir, env=slurm.env)
    assert r.returncode == 0, r.stderr
    job2 = _job_id(r.stdout)
    assert f"time limit {expected} min" in r.stdout
    assert slurm.wait_job(job2, timeout=180) == "COMPLETED"
    assert _time_limit_minutes(slurm, job2) == {expected}
    assert ps.count(UNASSIGNED) == 175 and assert_consistent(ps) == 175


def test_example_generator_with_its_slurm_options(slurm, tmp_path: Path, capsys, monkeypatch):
    for key in ("SLURM_CONF", "PATH"):
        monkeypatch.setenv(key, slurm.env[key])
    d = tmp_path / "example"
    d.mkdir()
    shutil.copy(EXAMPLE_DATASETS, d / "datasets.py")  # asks for --qos=test and 1GB per job
    assert cli("generate", "noisy_sine", "-n", "200", "--jobs", "4", "--time", "2",
               "--params", "{'left': 0, 'std_dev': 0.5}", gen_dir=d) == 0
    job = _job_id(capsys.readouterr().out)
    assert slurm.wait_job(job, timeout=180) == "COMPLETED"
    text = slurm.run(["scontrol", "-o", "show", "job", job]).stdout
    assert "MinMemoryNode=1G" in text
    # The kept script is the whole record: the generator's slurm_options are #SBATCH lines in it.
    (kept,) = (d / "gen_cache" / "noisy_sine").glob("*/logs/sbatch-*.sh")
    assert "\n#SBATCH --qos=test\n" in kept.read_text() and "\n#SBATCH --mem=1024M\n" in kept.read_text()
    X, _y = Cache(d)["noisy_sine"][{"left": 0, "std_dev": 0.5}][UNASSIGNED].get(200)
    assert X.shape == (200, 1) and (X >= 0).all() and (X <= 1).all()


def test_sbatch_refusal_is_one_line_exit_1(slurm, slurm_gen_dir: Path, capsys):
    assert cli("generate", "seq", "-n", "5", "--time", "1", "--slurm-options=--partition=nope",
               gen_dir=slurm_gen_dir) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sbatch refused" in err and "partition" in err.lower()


def test_scancel_keeps_the_finished_samples_of_the_unfinished_chunk(slurm, slurm_gen_dir: Path, capsys):
    # 0.2 s per sample, 10 per chunk: cancel 0.5 s after the first chunk, mid-way into the second.
    assert cli("generate", "seq", "-n", "1000", "--jobs", "1", "--time", "3", "--params", "{'delay': 0.2}",
               gen_dir=slurm_gen_dir) == 0
    job = _job_id(capsys.readouterr().out)
    deadline = time.monotonic() + 120
    while not list(slurm_gen_dir.glob(f"gen_cache/seq/*/{UNASSIGNED}/*.npz")):
        assert time.monotonic() < deadline, "the job wrote no chunk"
        time.sleep(0.05)
    time.sleep(0.5)
    slurm.run(["scancel", job])  # SIGTERM to the job's processes, SIGKILL after KillWait
    assert slurm.wait_job(job, timeout=120) == "CANCELLED"
    ps = only_param_set(slurm_gen_dir)
    sizes = sorted(n for _, n in ps.chunks(UNASSIGNED))
    assert sizes[-1] == 10 and 0 < sizes[0] < 10, sizes
    assert assert_consistent(ps) == ps.count(UNASSIGNED) == sum(sizes)
