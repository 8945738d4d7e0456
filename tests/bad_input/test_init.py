"""scorch-init's bad input: directories it cannot or may not write into. Nothing is written."""
from __future__ import annotations

import pytest

from scorch.cli.init import main
from tests.bad_input.harness import TMP, Case, params, run_in_process

CASES = {
    "empty DIR": Case([""], "DIR", "use . for the current one"),
    "DIR with a control character": Case(["new\rproject"], "DIR", "control character"),
    "DIR with a newline": Case([f"{TMP}/a\nb"], "DIR", "control character"),
    "DIR with a part of 300 bytes": Case([f"{TMP}/{'d' * 300}"], "DIR", "longer than 255 bytes"),
    "no DIR": Case([], "the following arguments are required: DIR"),
    "unknown flag": Case([TMP, "--yes"], "unrecognized arguments: --yes"),
    "DIR is a file": Case([f"{TMP}/f"], "exists and is not a directory", files={"f": "mine\n"}),
    "DIR under a file": Case([f"{TMP}/f/sub"], "DIR", "cannot write into", files={"f": "mine\n"}),
    "files there already": Case([f"{TMP}/p"], "already exist", "--force", files={"p/model.py": "mine\n", "p/dataset.py": "mine\n"}),
    "one file there already": Case([f"{TMP}/p"], "p/dataset.py already exists", "--force", files={"p/dataset.py": "mine\n"}),
    "--force onto a directory named dataset.py": Case([f"{TMP}/p", "--force"], "dataset.py", "is a directory",
                                                       files={"p/model.py": "mine\n", "p/dataset.py/keep": "mine\n"}),
}


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys, monkeypatch):
    run_in_process(main, "scorch-init", case, tmp_path, capsys, monkeypatch)
