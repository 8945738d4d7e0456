"""Fixtures for scorch-gen tests: a directory with a test datasets.py, CLI runners."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scorch.cli.gen import main
from scorch.gen._store import ParamSetDir, read_chunk

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXAMPLE_DATASETS = REPO / "examples" / "gen" / "datasets.py"

# Generators used by the tests. `seq` yields x = offset + i (a recognisable value per
# sample) and can sleep per sample (to be killed mid-chunk) or make wide rows (slow writes).
TEST_DATASETS = '''
import time
import numpy as np
import scorch.gen


class SeqParams(scorch.gen.Params):
    offset = 0.0
    delay = 0.0   # seconds slept per sample
    width = 1     # length of each x


@scorch.gen.generator(10, SeqParams, memory="100MB")
def seq(size, params):
    for i in range(size):
        if params.delay:
            time.sleep(params.delay)
        yield np.full(params.width, params.offset + i), np.float64(i)


class SineParams(scorch.gen.Params):
    left = -1.0
    right = 1.0
    std_dev = 0.1


@scorch.gen.generator(50, SineParams, memory="1GB")
def noisy_sine(size, params):
    for x in np.random.uniform(params.left, params.right, size=size):
        yield x, np.sin(x) + np.random.normal(scale=params.std_dev)
'''


@pytest.fixture
def gen_dir(tmp_path: Path) -> Path:
    """A directory (with a space in its name) holding the test datasets.py."""
    d = tmp_path / "gen dir"
    d.mkdir()
    (d / "datasets.py").write_text(TEST_DATASETS)
    return d


def cli(*args: str, gen_dir: Path) -> int:
    """``main([...])`` with ``--dir gen_dir`` appended."""
    return main([*args, "--dir", str(gen_dir)])


def console(*args: str, gen_dir: Path, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``scorch-gen`` console script."""
    return subprocess.run([str(BIN / "scorch-gen"), *args, "--dir", str(gen_dir)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def only_param_set(gen_dir: Path, dataset: str = "seq") -> ParamSetDir:
    """The single parameter set of *dataset* in the cache."""
    base = gen_dir / "gen_cache" / dataset
    dirs = [d for d in base.iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return ParamSetDir(dirs[0])


def all_uids(ps: ParamSetDir) -> list[str]:
    """Every sample id in every counted chunk, read from the files themselves."""
    return [str(u) for path in ps.all_chunk_paths() for u in read_chunk(path, ("uid",))["uid"]]


def group_uids(ps: ParamSetDir, group: str) -> set[str]:
    directory = ps.group_dir(group)
    return {str(u) for name, _ in ps.chunks(group)
            for u in read_chunk(directory / name, ("uid",))["uid"]}


def assert_consistent(ps: ParamSetDir) -> int:
    """Every counted file loads, its name's count matches its rows, uids are unique.

    Returns the total number of samples.
    """
    total = 0
    for path in ps.all_chunk_paths():
        arrays = read_chunk(path, ("X", "y", "time", "uid"))
        n = int(path.name.split(".n")[1].split(".")[0])
        assert {len(a) for a in arrays.values()} == {n}, path
        total += n
    uids = all_uids(ps)
    assert len(uids) == len(set(uids)) == total
    return total

