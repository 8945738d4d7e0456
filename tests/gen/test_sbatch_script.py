"""The sbatch script is one pure function; compared to a golden file."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from scorch.gen._slurm import sbatch_script

GOLDEN = Path(__file__).parent / "golden" / "sbatch_array.sh"
ODD = "/data/it's a \"dir\" with spaces"


def _script() -> str:
    return sbatch_script(
        command=["/opt/venv/bin/python", "-m", "scorch.gen._worker", "--dir", ODD,
                 "--params-json", '{"name":"a b","x":1}', "--total", "100", "--jobs", "4"],
        job_name="gen-seq-0123456789ab", array_size=4, time_minutes=7, memory_mb=1024,
        output=f"{ODD}/gen_cache/seq/0123456789ab/logs/%A_%a.out", chdir=ODD)


def test_matches_golden_file():
    # To update after a deliberate change: write _script() to the golden file and review the diff.
    assert _script() == GOLDEN.read_text()


def test_flags_sorted_and_values_round_trip_through_shell_quoting():
    lines = _script().splitlines()
    flags = [line for line in lines if line.startswith("#SBATCH ")]
    assert flags == sorted(flags)
    values = dict(shlex.split(line[len("#SBATCH "):])[0].lstrip("-").split("=", 1) for line in flags)
    assert values["chdir"] == ODD and values["array"] == "0-3" and values["mem"] == "1024M"
    command = shlex.split(lines[-1])
    assert command[0] == "exec" and command[4:6] == ["--dir", ODD]
    assert command[7] == '{"name":"a b","x":1}'


def test_array_size_must_be_positive():
    with pytest.raises(ValueError):
        sbatch_script(command=["true"], job_name="x", array_size=0, time_minutes=1,
                      memory_mb=1, output="o", chdir="/")
