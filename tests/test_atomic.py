"""Atomic writes: the old file or the new one, with the permissions of any other new file."""
import os
import stat

import pytest

from scorch import _atomic
from scorch.cli.train import main
from tests.helpers import base_args


@pytest.fixture
def umask():
    def set_mask(mask):
        os.umask(mask)

    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_files_honour_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    assert _atomic.umask() == mask
    _atomic.write_text(tmp_path / "a.txt", "x")
    _atomic.write_bytes(tmp_path / "b.bin", b"x")
    _atomic.create_json_once(tmp_path / "c.json", {"a": 1})
    assert [mode(tmp_path / n) for n in ("a.txt", "b.bin", "c.json")] == [expected] * 3


def test_a_run_directory_is_readable_by_the_group_under_umask_022(tmp_path, umask):
    umask(0o022)
    assert main(base_args(tmp_path, "r", "--epochs", "1")) == 0
    run = tmp_path / "r"
    for name in ("config.json", "meta.json", "history.csv", "checkpoints/last.pt", "checkpoints/best.pt", "mlp_model.py"):
        assert mode(run / name) == 0o644, name


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "f.txt"
    _atomic.write_text(target, "old")
    with pytest.raises(RuntimeError), _atomic.atomic_open(target) as f:
        f.write("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]
