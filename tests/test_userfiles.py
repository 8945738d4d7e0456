"""The user's files are imported by path, each under its own synthetic module name."""
from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import pytest
import torch

from scorch.contract import userfiles
from tests.helpers import FIXTURES, MODEL

OTHER_MODEL = str(FIXTURES / "bn_model.py")


def test_two_model_files_in_one_process_keep_their_own_classes() -> None:
    first = userfiles.load_model_file(MODEL)
    second = userfiles.load_model_file(OTHER_MODEL)
    assert first.network_cls is not second.network_cls
    assert first.module.__name__ != second.module.__name__
    assert sys.modules[first.module.__name__] is first.module  # the second did not replace the first
    assert sys.modules[second.module.__name__] is second.module
    for model in (first, second):  # pickling finds each class under its own module (DataLoader workers do)
        net = model.build_network()
        back = pickle.loads(pickle.dumps(net))
        assert type(back) is model.network_cls
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), back.state_dict().values()))


def test_one_file_has_one_name_however_its_path_is_spelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link = tmp_path / "linked model.py"
    link.symlink_to(MODEL)
    monkeypatch.chdir(FIXTURES)
    names = {userfiles.module_name(p, "model") for p in (MODEL, os.path.basename(MODEL), str(link))}
    assert len(names) == 1  # a spawned worker re-imports it by its absolute path under the same name
    assert names.pop().startswith("scorch_user_model_")
    assert userfiles.module_name(MODEL, "dataset") != userfiles.module_name(MODEL, "model")
