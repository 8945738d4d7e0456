"""The Horovod that scripts/setup_horovod.sh builds: real mpirun and horovodrun, 2 ranks, CPU.

Each rank runs hvd.init(), an allreduce and one hvd.DistributedOptimizer step on a
tiny model, and writes what it saw to a file; the test checks the ranks agree and
that the step used the gradient averaged over both ranks.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("horovod") is None:
    pytest.skip(
        "horovod is not installed in this Python; build it with 'bash scripts/setup_horovod.sh' (make setup-horovod)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.mpi

LR = 0.1

# Rank r feeds a batch of 4 rows of (r + 1): the local weight gradient is 4 * (r + 1)
# per element and the bias gradient 4, so with 2 ranks the averaged weight gradient is 6.
RANK_SCRIPT = """
import json, sys
from pathlib import Path

out, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "mpi4py-first":
    # As the launcher does: MPI comes up through mpi4py, Horovod joins it later.
    from mpi4py import MPI
    master = MPI.COMM_WORLD.bcast("rank0-address" if MPI.COMM_WORLD.rank == 0 else None, root=0)

import torch
import horovod.torch as hvd

hvd.init()
rank, size = hvd.rank(), hvd.size()
total = hvd.allreduce(torch.tensor([float(rank + 1)]), op=hvd.Sum, name="total").item()

torch.manual_seed(1000 + rank)  # different weights per rank until the broadcast
model = torch.nn.Linear(3, 1)
opt = hvd.DistributedOptimizer(
    torch.optim.SGD(model.parameters(), lr=LR), named_parameters=model.named_parameters()
)
hvd.broadcast_parameters(model.state_dict(), root_rank=0)
before = [p.detach().flatten().tolist() for p in (model.weight, model.bias)]
opt.zero_grad()
model(torch.full((4, 3), float(rank + 1))).sum().backward()
opt.step()
after = [p.detach().flatten().tolist() for p in (model.weight, model.bias)]

result = {"rank": rank, "size": size, "total": total, "before": before, "after": after}
if mode == "mpi4py-first":
    result["master"] = master
    result["mpi4py_after_hvd"] = MPI.COMM_WORLD.allgather(rank)
(out / f"rank{rank}.json").write_text(json.dumps(result))
""".replace("LR", repr(LR))


def _run(cmd: list[str], out: Path, env: dict[str, str] | None = None) -> list[dict]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    files = sorted(out.glob("rank*.json"))
    assert [f.name for f in files] == ["rank0.json", "rank1.json"], f"rank files: {files}\n{proc.stdout}\n{proc.stderr}"
    return [json.loads(f.read_text()) for f in files]


def _check_two_ranks(results: list[dict]) -> None:
    r0, r1 = results
    assert (r0["rank"], r1["rank"]) == (0, 1)
    assert r0["size"] == r1["size"] == 2
    assert r0["total"] == r1["total"] == 3.0  # 1 + 2
    assert r0["before"] == r1["before"], "broadcast_parameters left the ranks with different weights"
    assert r0["after"] == r1["after"], "the ranks differ after one DistributedOptimizer step"
    (w0, b0), (w1, b1) = r0["before"], r0["after"]
    assert w1 == pytest.approx([w - LR * 6.0 for w in w0]), "weight step is not -lr * (gradient averaged over ranks)"
    assert b1 == pytest.approx([b - LR * 4.0 for b in b0])


@pytest.fixture
def rank_script(tmp_path: Path) -> Path:
    script = tmp_path / "hvd_rank.py"
    script.write_text(RANK_SCRIPT)
    return script


@pytest.mark.parametrize("mode", ["hvd-init", "mpi4py-first"])
def test_mpirun_two_ranks(rank_script: Path, tmp_path: Path, mode: str) -> None:
    mpirun = shutil.which("mpirun")
    assert mpirun, "mpirun not found; install Open MPI (apt-get install openmpi-bin libopenmpi-dev)"
    out = tmp_path / "out"
    out.mkdir()
    results = _run([mpirun, "-np", "2", sys.executable, str(rank_script), str(out), mode], out)
    _check_two_ranks(results)
    if mode == "mpi4py-first":
        assert [r["master"] for r in results] == ["rank0-address"] * 2
        assert [r["mpi4py_after_hvd"] for r in results] == [[0, 1]] * 2


@pytest.mark.slow
def test_horovodrun_two_ranks(rank_script: Path, tmp_path: Path) -> None:
    horovodrun = Path(sys.executable).parent / "horovodrun"
    assert horovodrun.is_file(), f"{horovodrun} not found next to {sys.executable}"
    out = tmp_path / "out"
    out.mkdir()
    # horovodrun passes --allow-run-as-root to mpirun itself: no OMPI_ALLOW_RUN_AS_ROOT* needed.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMPI_ALLOW_RUN_AS_ROOT")}
    cmd = [str(horovodrun), "-np", "2", "-H", "localhost:2", "--mpi",
           sys.executable, str(rank_script), str(out), "hvd-init"]
    _check_two_ranks(_run(cmd, out, env))
