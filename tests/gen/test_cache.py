"""Reading cached samples: Cache(path)[name][params][group].get(n), the torch adapter."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from scorch.gen import Cache, CachedDataset, GenError, NotEnoughSamples
from scorch.gen._moves import move
from scorch.gen._store import UNASSIGNED, read_chunk

from .conftest import TEST_DATASETS, cli


@pytest.fixture(scope="module")
def cached(tmp_path_factory) -> Path:
    """Read-only for the tests (a test that moves works on a copy)."""
    gen_dir = tmp_path_factory.mktemp("cache") / "gen dir"
    gen_dir.mkdir()
    (gen_dir / "datasets.py").write_text(TEST_DATASETS)
    # Two parameter sets: defaults (x = 0..59) and offset 1000 (x = 1000..1029).
    assert cli("generate", "seq", "-n", "60", "--jobs", "1", "--local", "--time", "5",
               gen_dir=gen_dir) == 0
    assert cli("generate", "seq", "-n", "30", "--jobs", "1", "--local", "--time", "5",
               "--params", "{'offset': 1000}", gen_dir=gen_dir) == 0
    assert cli("move", "seq", "25", "train", gen_dir=gen_dir) == 0
    assert cli("move", "seq", "10", "train", gen_dir=gen_dir) == 0
    assert cli("move", "seq", "20", "test", "--params", "{'offset': 1000}", gen_dir=gen_dir) == 0
    return gen_dir


def test_get_returns_the_samples_in_move_order(cached: Path):
    X, y = Cache(cached)["seq"][0]["train"].get(30)
    assert X.shape == (30, 1) and y.shape == (30,)
    assert X[:, 0].tolist() == list(range(30)) and y.tolist() == list(range(30))
    X_all, _ = Cache(cached)["seq"][0]["train"].get()
    assert X_all[:, 0].tolist() == list(range(35))
    X1, _ = Cache(cached)["seq"][0]["train"].get(7)  # inside the first file: no copy needed
    assert X1[:, 0].tolist() == list(range(7))


def test_parameter_set_by_index_id_or_values(cached: Path):
    seq = Cache(cached)["seq"]
    by_index = seq[1]
    assert seq[{"offset": 1000}].param_id == by_index.param_id == seq[by_index.param_id].param_id
    assert seq[{"offset": 1000.0}].param_id == by_index.param_id
    X, _ = by_index["test"].get(20)
    assert sorted(X[:, 0].tolist()) == list(range(1000, 1020))
    assert by_index.counts() == {UNASSIGNED: 10, "test": 20}


def test_asking_more_than_exist_says_how_many(cached: Path):
    with pytest.raises(NotEnoughSamples, match="group 'train' has 35 samples, 36 requested") as info:
        Cache(cached)["seq"][0]["train"].get(36)
    assert info.value.available == 35


@pytest.mark.parametrize("key, message", [
    (5, "there are 2 parameter sets"),
    ({"offset": 3}, "no samples with parameter set"),
    ({"ofset": 3}, "unknown parameter"),
    ("nope", "no samples with parameter set 'nope'"),
])
def test_bad_parameter_set_keys(cached: Path, key, message):
    with pytest.raises(GenError, match=message):
        Cache(cached)["seq"][key]


def test_unknown_dataset_lists_known(cached: Path):
    with pytest.raises(GenError, match="datasets with samples: seq"):
        Cache(cached)["nope"]


def test_ids_times_and_unassigned_reads(cached: Path):
    reader = Cache(cached)["seq"][0]["train"]
    ids = reader.ids()
    assert len(ids) == len(set(ids.tolist())) == len(reader) == 35
    assert (reader.times() >= 0).all()
    X, _ = Cache(cached)["seq"][0][UNASSIGNED].get(25)
    assert X[:, 0].tolist() == list(range(35, 60))


def test_files_are_read_without_pickle(cached: Path):
    for path in (cached / "gen_cache").rglob("*.npz"):
        with np.load(path, allow_pickle=False) as data:
            assert all(data[k].dtype != object for k in data.files)


def test_torch_dataset_adapter(cached: Path):
    ds = CachedDataset(cached, "seq", 0, "train", n=12)
    assert len(ds) == 12
    x, y = ds[11]
    assert x.dtype == torch.float32 and x.tolist() == [11.0] and y.item() == 11.0
    loader = torch.utils.data.DataLoader(ds, batch_size=5)
    assert [len(b[0]) for b in loader] == [5, 5, 2]
    view = CachedDataset.from_arrays(*Cache(cached)["seq"][0]["train"].get(3), dtype=None)
    assert view[2][0].dtype == torch.float64


def test_reads_stay_stable_when_more_moves_land(cached: Path, tmp_path: Path):
    cached = Path(shutil.copytree(cached, tmp_path / "copy"))
    reader = Cache(cached)["seq"][0]["train"]
    first = reader.ids(35)
    move(only_param_set_by_index(cached, 0), 5, "train")
    assert (reader.ids(35) == first).all() and len(reader) == 40


def only_param_set_by_index(gen_dir: Path, index: int):
    return Cache(gen_dir)["seq"][index].dir


def test_get_concatenates_across_files_exactly(cached: Path):
    ps = only_param_set_by_index(cached, 0)
    direct = np.concatenate([read_chunk(ps.group_dir("train") / n)["X"] for n, _ in ps.chunks("train")])
    X, _ = Cache(cached)["seq"][0]["train"].get(33)
    assert np.array_equal(X, direct[:33])


def test_reading_runs_no_code_from_the_data_directory_unless_asked(cached: Path, tmp_path: Path):
    """A dict of values is matched against the stored values; datasets.py is imported only when it
    is named with datasets= (then its defaults resolve the dict)."""
    d = Path(shutil.copytree(cached, tmp_path / "copy"))
    marker = tmp_path / "imported"
    (d / "datasets.py").write_text(TEST_DATASETS + f"\nopen({str(marker)!r}, 'w').close()\n")
    seq = Cache(d)["seq"]
    assert seq[{"offset": 1000}].param_id == seq[1].param_id
    with pytest.raises(GenError, match="unknown parameter\\(s\\) ofset; the stored parameter sets have delay, offset"):
        seq[{"ofset": 3}]
    with pytest.raises(GenError, match="matches 2 parameter sets; pass the id, or datasets="):
        seq[{}]
    assert len(CachedDataset(d, "seq", {"offset": 1000}, "test")) == 20
    assert not marker.exists()
    resolved = Cache(d, datasets=d / "datasets.py")["seq"]
    assert resolved[{}].param_id == seq[0].param_id  # the defaults come from the generator
    assert marker.exists()
    with pytest.raises(GenError, match="no such generators file"):
        Cache(d, datasets=d / "nope.py")["seq"][{"offset": 1000}]
