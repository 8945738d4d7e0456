"""submit()'s errors without a SLURM (the ones with one are in test_slurm.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from scorch.errors import EXIT_BAD_INPUT, Error
from scorch.jobs import SubmitError, submit


def test_no_sbatch_on_path_is_one_of_scorchs_errors_with_the_bad_input_code(tmp_path: Path) -> None:
    script = tmp_path / "job.sbatch"
    script.write_text("#!/bin/bash\ntrue\n")
    with pytest.raises(Error, match="sbatch not found on PATH: run on a SLURM login node") as info:
        submit(script, env={"PATH": str(tmp_path)})
    assert isinstance(info.value, SubmitError) and not info.value.refused
    assert info.value.exit_code == EXIT_BAD_INPUT and "\n" not in str(info.value)
