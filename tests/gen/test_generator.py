"""@generator and loading datasets.py: what is found, and the errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from scorch.gen import GenError, Params, generator
from scorch.gen._generator import load_datasets, parse_memory_mb

from .conftest import EXAMPLE_DATASETS


class P(Params):
    a = 1


def test_decorated_function_stays_callable_and_is_found(gen_dir: Path):
    specs = load_datasets(gen_dir)
    assert sorted(specs) == ["noisy_sine", "seq"]
    seq = specs["seq"]
    assert (seq.save_every, seq.memory_mb, seq.slurm_options) == (10, 100, ())
    samples = list(seq.func(3, seq.make_params({"offset": 5})))
    assert [float(x[0]) for x, _ in samples] == [5.0, 6.0, 7.0]


def test_example_datasets_file():
    spec = load_datasets(EXAMPLE_DATASETS.parent)["noisy_sine"]
    assert (spec.save_every, spec.memory_mb, spec.slurm_options) == (50, 1024, ("--qos=test",))


@pytest.mark.parametrize("memory, mb", [("1GB", 1024), ("512MB", 512), ("2G", 2048), (300, 300),
                                        ("1.5GiB", 1536)])
def test_memory_sizes(memory, mb):
    assert parse_memory_mb(memory) == mb


@pytest.mark.parametrize("args, message", [
    ((0, P), "save_every=0"),
    ((10, dict), "Params subclass"),
    ((10, P, "lots"), "memory='lots'"),
])
def test_decorator_arguments_checked(args, message):
    with pytest.raises(GenError, match=message):
        generator(*args)


def test_imported_generators_are_not_datasets(tmp_path: Path):
    (tmp_path / "other.py").write_text(
        "import scorch.gen\nclass P(scorch.gen.Params):\n    a = 1\n"
        "@scorch.gen.generator(5, P)\ndef imported(size, params):\n    yield 1, 2\n")
    (tmp_path / "datasets.py").write_text(
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\nfrom other import imported, P\nimport scorch.gen\n"
        "@scorch.gen.generator(5, P)\ndef mine(size, params):\n    yield 1, 2\n")
    assert list(load_datasets(tmp_path)) == ["mine"]


@pytest.mark.parametrize("source, message", [
    ("x = 1\n", "defines no dataset"),
    ("import numpy\n\ndef f(:\n", r"datasets.py:3: importing it raised SyntaxError"),
    ("import numpy\nraise RuntimeError('boom')\n", r"datasets.py:2: importing it raised RuntimeError: boom"),
])
def test_datasets_file_errors_name_the_file(tmp_path: Path, source, message):
    (tmp_path / "datasets.py").write_text(source)
    with pytest.raises(GenError, match=message):
        load_datasets(tmp_path)


def test_missing_datasets_file(tmp_path: Path):
    with pytest.raises(GenError, match=f"no datasets.py in {tmp_path}"):
        load_datasets(tmp_path)
