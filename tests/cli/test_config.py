"""TrainConfig: pure data checked value by value; what each field declares, and what is derived from it."""
from __future__ import annotations

import ast
import dataclasses
import importlib
import math
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

import scorch
from scorch import config as config_mod
from scorch.cli.train import build_parser
from scorch.config import INVOCATION_KEYS, NOT_SWEEPABLE, TRAJECTORY_KEYS, TrainConfig, settings
from scorch.errors import ScorchError

NUMBERS = {name: s for name, s in settings().items() if config_mod.hints()[name] in (int, float, int | None, float | None)}


def test_a_config_touches_no_file(tmp_path: Path) -> None:
    """Files are checked where they are loaded; a config of files that do not exist (yet) is fine."""
    c = TrainConfig(model=str(tmp_path / "later.py"), dataset=str(tmp_path / "later_too.py"))
    assert c.replace(epochs=3).epochs == 3 and not any(tmp_path.iterdir())


def test_the_old_key_tuples_are_derived_from_the_fields() -> None:
    assert set(INVOCATION_KEYS) == {"resume", "auto_resume", "overwrite", "debug", "progress", "config", "nproc_per_node",
                                    "nnodes", "node_rank", "master_addr", "master_port", "name", "run_root", "max_restarts",
                                    "test", "break_lock", "max_time"}
    assert set(TRAJECTORY_KEYS) == {"batch_size", "lr", "optimizer", "weight_decay", "momentum", "seed", "accumulate",
                                    "clip_grad", "amp", "lr_schedule", "warmup_epochs", "model_settings", "dataset_settings",
                                    "socket_settings", "shared_settings", "compile", "warmup_steps", "schedule_by"}
    assert set(NOT_SWEEPABLE) == {"name", "run_root", "resume", "auto_resume", "overwrite", "config", "progress", "debug",
                                  "test", "break_lock"}
    assert all("setting" in f.metadata for f in dataclasses.fields(TrainConfig))


def test_the_parser_is_derived_from_the_fields() -> None:
    dests = {a.dest: a for a in build_parser()._actions}
    flagged = {name for name, s in settings().items() if s.help is not None}
    assert flagged == set(TrainConfig.__dataclass_fields__) - {"lr_schedule", "warmup_epochs", "model_settings",
                                                                "dataset_settings", "socket_settings", "shared_settings"}
    for name in flagged:
        assert dests[name].option_strings == [config_mod.flag(name)], name
        assert settings()[name].help in (dests[name].help or ""), name
        choices = settings()[name].choices
        assert tuple(dests[name].choices or ()) == choices, name
    assert config_mod.flag("progress") == "--no-progress" and config_mod.flag("warmup_epochs") == "--set warmup_epochs"


def _inside(value: float, s: config_mod.Setting) -> bool:
    return (math.isfinite(value) and (s.at_least is None or value >= s.at_least)
            and (s.more_than is None or value > s.more_than) and (s.less_than is None or value < s.less_than))


@given(st.sampled_from(sorted(NUMBERS)),
       st.one_of(st.integers(min_value=-2**70, max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
                 st.sampled_from([0, 1, -1, 2**63 - 1, 2**63, 65535, 65536, 1e9, 0.999999, 1.0])))
def test_a_number_is_accepted_exactly_inside_its_declared_range(name: str, value: float) -> None:
    annotation = config_mod.hints()[name]
    if isinstance(value, float) and float not in (annotation, *getattr(annotation, "__args__", ())):
        return  # an int setting given a float: a type error, tested below
    changes = {name: value, **({"nnodes": 2**62} if name == "node_rank" else {})}
    try:
        TrainConfig(model="m.py", dataset="d.py", **changes)
    except ScorchError as exc:
        assert not _inside(value, NUMBERS[name]) or name == "node_rank", exc
        assert str(exc).startswith(config_mod.flag(name)) and "\n" not in str(exc)
    else:
        assert _inside(value, NUMBERS[name])


@pytest.mark.parametrize("changes, words", [
    ({"epochs": "3"}, ["--epochs", "expected int, got '3'"]),
    ({"epochs": True}, ["--epochs", "expected int"]),
    ({"lr": float("nan")}, ["--lr", "finite number > 0", "nan"]),
    ({"momentum": 1.0}, ["--momentum", ">= 0 and < 1"]),
    ({"seed": 2**63}, ["--seed", "< 2**63"]),
    ({"dist_timeout": float("inf")}, ["--dist-timeout", "finite"]),
    ({"master_port": 0}, ["--master-port", ">= 1 and < 65536"]),
    ({"optimizer": "lion"}, ["--optimizer", "'lion' is not one of adam, adamw, sgd"]),
    ({"name": "a/b"}, ["--name", "'a/b'", "without '/'"]),
    ({"name": ".."}, ["--name", "'..'"]),
    ({"name": ""}, ["--name", "''"]),
    ({"name": "a\x00b"}, ["--name", "control character"]),
    ({"name": "tab\there"}, ["--name", "control character"]),
    ({"name": "é" * 128}, ["--name", "256 bytes", "at most 255"]),
    ({"run_root": ""}, ["--run-root", "use . for the current one"]),
    ({"run_root": "runs\n"}, ["--run-root", "control character"]),
    ({"run_root": "x/" + "y" * 256}, ["--run-root", "longer than 255 bytes"]),
    ({"monitor": "valid/a\nb"}, ["--monitor", "train/NAME"]),
    ({"master_addr": ""}, ["--master-addr", "expected a host name or address, got ''"]),
    ({"master_addr": "node 1"}, ["--master-addr", "'node 1'"]),
    ({"model": ""}, ["--model", "expected a file"]),
    ({"lr_schedule": [[3, float("inf")]]}, ["lr_schedule", "finite LR > 0"]),
    ({"lr_schedule": [[True, 0.1]]}, ["lr_schedule", "not a schedule"]),
    ({"warmup_epochs": -1}, ["--set warmup_epochs", ">= 0"]),
])
def test_bad_values_name_the_flag_in_one_line(changes: dict, words: list[str]) -> None:
    with pytest.raises(ScorchError) as info:
        TrainConfig(**{"model": "m.py", "dataset": "d.py", **changes})
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_names_at_the_limits_are_accepted() -> None:
    assert TrainConfig(model="m", dataset="d", name="é" * 127 + "x", run_root="./r", seed=2**63 - 1, momentum=0.0,
                       dist_timeout=1e-3).name == "é" * 127 + "x"


def test_the_package_names_what_it_exports_from_modules_that_exist() -> None:
    """scorch/__init__.py's type-checking imports point at real modules and names (it once named
    scorch.train, which does not exist), and each lazy attribute resolves."""
    tree = ast.parse(Path(scorch.__file__).read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1]
    assert imports
    for node in imports:
        for alias in node.names:
            if node.module is None:  # from . import trainer
                importlib.import_module(f"scorch.{alias.name}")
            else:
                assert hasattr(importlib.import_module(f"scorch.{node.module}"), alias.name), (node.module, alias.name)
    from scorch.training.trainer import RunResult, train

    assert scorch.RunResult is RunResult and scorch.train is train
    for name in scorch.__all__:
        assert getattr(scorch, name) is not None, name
