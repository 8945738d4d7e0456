"""The direct .npz reader agrees with np.load, falls back safely, never unpickles."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from scorch.gen._npz import read_rows


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(0, 40), shape=st.lists(st.integers(0, 4), max_size=3),
       dtype=st.sampled_from(["<f8", "<f4", "<i8", "|u1", "?", "<c16", "<U7", ">f8"]),
       data=st.data())
def test_matches_np_load(tmp_path: Path, rows, shape, dtype, data):
    rng = np.random.default_rng(rows)
    X = (rng.random((rows, *shape)) * 100).astype(dtype)
    y = np.arange(rows)
    path = tmp_path / "c.npz"
    np.savez(path, X=X, y=y)
    take = data.draw(st.integers(0, rows))
    got = read_rows(path, ("X", "y"), take, None, 0)
    assert got["X"].dtype == X.dtype and np.array_equal(got["X"], X[:take])
    assert np.array_equal(got["y"], y[:take])
    # into the middle of a bigger output
    out = {"X": np.zeros((take + 3, *shape), X.dtype), "y": np.zeros(take + 3, y.dtype)}
    read_rows(path, ("X", "y"), take, out, 2)
    assert np.array_equal(out["X"][2:2 + take], X[:take])


@pytest.mark.parametrize("save", [np.savez_compressed, np.savez])
def test_compressed_and_fortran_fall_back_to_np_load(tmp_path: Path, save):
    X = np.asfortranarray(np.arange(24.0).reshape(6, 4))
    save(tmp_path / "f.npz", X=X)
    assert np.array_equal(read_rows(tmp_path / "f.npz", ("X",), 5, None, 0)["X"], X[:5])


def test_object_arrays_are_refused_not_unpickled(tmp_path: Path):
    marker = tmp_path / "pwned"
    evil = np.array([_Evil(str(marker))], dtype=object)
    for save in (np.savez, np.savez_compressed):
        save(tmp_path / "evil.npz", X=evil)
        with pytest.raises(ValueError, match=r"object|allow_pickle"):
            read_rows(tmp_path / "evil.npz", ("X",), 1, None, 0)
    assert not marker.exists()


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_truncated_file_is_an_error(tmp_path: Path):
    path = tmp_path / "t.npz"
    np.savez(path, X=np.zeros((100, 10)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises((ValueError, OSError, EOFError, zipfile.BadZipFile)):
        read_rows(path, ("X",), 100, None, 0)


def test_missing_member(tmp_path: Path):
    np.savez(tmp_path / "m.npz", X=np.zeros(3))
    with pytest.raises(KeyError, match="uid"):
        read_rows(tmp_path / "m.npz", ("uid",), 1, None, 0)
