"""scorch/training/_malloc.py: glibc keeps the memory a step frees for the next step, unless the user chose."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench._sections import MLP_MEDIUM
from bench._work import Work, scorch_args
from scorch.training import _malloc

REPO = Path(__file__).resolve().parents[1]

def faults_per_step(tmp_path, **environ: str) -> float:
    """Minor page faults per training step of scorch-train on the benchmarks' medium MLP (1.3M
    parameters, Adam), over its second epoch, from the stamps bench/workload.py writes."""
    work = Work(MLP_MEDIUM, {"n_train": 1024, "n_valid": 0, "in_features": 256}, epochs=2)
    stamps = tmp_path / f"stamps-{len(environ)}"
    env = {**os.environ, "BENCH_STAMPS": str(stamps), "OMP_NUM_THREADS": "1", **environ}
    cmd = [sys.executable, "-m", "bench.scorch_loop", *scorch_args(work, tmp_path / "runs", f"m{len(environ)}"), "--no-progress"]
    subprocess.run(cmd, env=env, cwd=REPO, check=True, capture_output=True, timeout=300)
    counts = json.loads(Path(f"{stamps}.rank0.json").read_text())["faults"]
    second = counts[len(counts) // 2:]
    return (second[-1] - second[0]) / (len(second) - 1)


def test_a_step_reuses_what_the_last_step_freed(tmp_path):
    # glibc's defaults give the freed blocks back and fault them in again: ~2,000 faults (8 MB) a
    # step here; with the thresholds set, nearly none (0.2 a step on an idle machine,
    # docs/benchmarks.md). A busy machine adds faults that are not the allocator's (the kernel's
    # NUMA-balancing and page-reclaim faults: 132 a step seen on a loaded CI machine), hence /5.
    tuned = faults_per_step(tmp_path)
    system = faults_per_step(tmp_path, SCORCH_MALLOC="system")
    assert system > 250, system  # ~2,000 on an idle machine, 335 seen on a loaded one
    assert tuned < system / 5, (tuned, system)


@pytest.mark.parametrize("environ, why", [
    ({}, None),
    ({"SCORCH_MALLOC": "system"}, "SCORCH_MALLOC=system"),
    ({"MALLOC_TRIM_THRESHOLD_": "0"}, "MALLOC_TRIM_THRESHOLD_"),
    ({"MALLOC_MMAP_THRESHOLD_": "65536"}, "MALLOC_MMAP_THRESHOLD_"),
    ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}, "GLIBC_TUNABLES"),
    ({"GLIBC_TUNABLES": "glibc.rtld.nns=8"}, None),
    ({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, "LD_PRELOAD (jemalloc)"),
    ({"LD_PRELOAD": "/opt/libtcmalloc_minimal.so"}, "LD_PRELOAD (tcmalloc)"),
])
def test_a_users_allocator_choice_is_left_alone(environ, why):
    assert _malloc.user_choice(environ) == why


def test_an_allocator_chosen_by_the_user_is_not_touched(tmp_path):
    assert faults_per_step(tmp_path, MALLOC_MMAP_THRESHOLD_="131072") > 500
