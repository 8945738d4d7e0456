"""Each launch environment, from its variables: detection, rank facts, rendezvous, backend choice."""
import sys

import pytest
import torch

from scorch import launch
from scorch.distributed import HOROVOD_ON_CPU, choose_backend
from scorch.errors import DistributedError
from scorch.launch.srun import slurm_first_host, slurm_port, tasks_on_node

OMPI = {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "8",
        "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}
TORCHRUN = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4", "GROUP_RANK": "1",
            "TORCHELASTIC_RUN_ID": "x", "MASTER_ADDR": "node0", "MASTER_PORT": "29400"}
SRUN = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0", "SLURM_NODEID": "1",
        "SLURM_TASKS_PER_NODE": "4(x2)", "SLURM_JOB_ID": "123456", "SLURM_STEP_NODELIST": "gpu[07-08]"}

# env -> launcher, (rank, world size, local rank, local world size, node rank)
CASES = {
    "plain process": ({}, "none", (0, 1, 0, 1, 0)),
    "open mpi": (OMPI, "mpirun", (3, 8, 1, 2, None)),
    "mpich/hydra (PMI)": ({"PMI_RANK": "2", "PMI_SIZE": "4", "MPI_LOCALRANKID": "0", "MPI_LOCALNRANKS": "2"},
                          "mpirun", (2, 4, 0, 2, None)),
    "horovodrun (gloo variables)": ({**OMPI, "HOROVOD_HOSTNAME": "n1"}, "horovodrun", (3, 8, 1, 2, None)),
    "horovodrun typed in a shell": ({**OMPI, "_": "/venv/bin/horovodrun"}, "horovodrun", (3, 8, 1, 2, None)),
    "torchrun": (TORCHRUN, "torchrun", (5, 8, 1, 4, 1)),
    "torch variables without torchrun": ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, "torchrun", (1, 2, 1, 1, None)),
    "torchrun inside an srun step": ({**SRUN, **TORCHRUN}, "torchrun", (5, 8, 1, 4, 1)),
    "srun step": (SRUN, "srun", (5, 8, 1, 4, 1)),
    "srun, uneven tasks per node": ({**SRUN, "SLURM_TASKS_PER_NODE": "3,2(x2)", "SLURM_NODEID": "2"}, "srun", (5, 8, 1, 2, 2)),
    "srun with --ntasks-per-node": ({**SRUN, "SLURM_NTASKS_PER_NODE": "4", "SLURM_TASKS_PER_NODE": "junk"}, "srun", (5, 8, 1, 4, 1)),
    "bare sbatch script (no step)": ({k: v for k, v in SRUN.items() if k != "SLURM_STEP_ID"}, "none", (0, 1, 0, 1, 0)),
}


@pytest.mark.parametrize("case", CASES)
def test_detect_and_rank_facts(case):
    env, launcher, facts = CASES[case]
    found = launch.detect(env)
    info = found.info
    assert found.name == info.launcher == launcher
    assert (info.rank, info.world_size, info.local_rank, info.local_world_size, info.node_rank) == facts
    assert (found.rank, found.world_size, found.local_rank, found.local_world_size) == facts[:4]
    assert info.distributed == (facts[1] > 1)


def test_detection_asks_every_environment_in_order_and_the_single_process_is_last():
    assert launch.ENVIRONMENTS[-1].name == "none"
    names = [cls.name for cls in launch.ENVIRONMENTS]
    assert names.index("horovodrun") < names.index("mpirun")  # horovodrun is mpirun plus a mark
    assert len(set(names)) == len(names) == 5


@pytest.mark.parametrize("env, expected", [
    (TORCHRUN, launch.Rendezvous("node0", 29400)),
    ({**TORCHRUN, "TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RESTART_COUNT": "2"},
     launch.Rendezvous("node0", 29400, agent_store=True, attempt=2)),
    (SRUN, launch.Rendezvous("gpu07", slurm_port("123456"))),
    ({**SRUN, "MASTER_ADDR": "10.0.0.9"}, launch.Rendezvous("10.0.0.9", slurm_port("123456"))),
    ({**SRUN, "MASTER_ADDR": "10.0.0.9", "MASTER_PORT": "4242"}, launch.Rendezvous("10.0.0.9", 4242)),
    ({**OMPI, "MASTER_ADDR": "10.0.0.9", "MASTER_PORT": "4242"}, launch.Rendezvous("10.0.0.9", 4242)),
])
def test_rendezvous_from_the_environment(env, expected):
    assert launch.detect(env).rendezvous() == expected


def test_torchrun_variables_without_master_address_are_one_clear_error():
    env = {k: v for k, v in TORCHRUN.items() if k != "MASTER_PORT"}
    with pytest.raises(DistributedError, match="8 ranks started by torchrun but MASTER_ADDR/MASTER_PORT are not set"):
        launch.detect(env).rendezvous()


@pytest.mark.parametrize("env, why", [({}, "a single process"), (TORCHRUN, "started by torchrun"),
                                      (SRUN, "started by srun"), ({**SRUN, "SCORCH_BACKEND": "horovod"}, "started by srun")])
def test_auto_backend_is_torch_outside_mpi(env, why):
    assert choose_backend("auto", launch.detect(env)) == ("torch", why)
    assert choose_backend("horovod", launch.detect(env)) == ("horovod", "--backend horovod")


MPI_RANK0 = {"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "1"}


@pytest.mark.parametrize("env, expected", [
    (MPI_RANK0, ("horovod", "started by mpirun, Horovod importable")),  # the original scorch's engine under mpirun
    ({**MPI_RANK0, "SCORCH_BACKEND": "Horovod"}, ("horovod", "SCORCH_BACKEND=horovod, Horovod importable")),
    ({**MPI_RANK0, "SCORCH_BACKEND": "torch"}, ("torch", "SCORCH_BACKEND=torch")),
    ({**MPI_RANK0, "HOROVOD_RANK": "0"}, ("horovod", "started by horovodrun, Horovod importable")),
])
def test_auto_backend_under_mpi(env, expected):
    hvd = pytest.importorskip("horovod.torch", reason="Horovod is not installed: run `make setup-horovod`")
    name, why = expected
    on_cpu = (name, f"{why}; {HOROVOD_ON_CPU}") if name == "horovod" else expected  # the start line's CPU note
    assert choose_backend("auto", launch.detect(env)) == on_cpu
    assert choose_backend("auto", launch.detect(env), torch.device("cpu")) == on_cpu
    on_gpu = expected if name != "horovod" or hvd.nccl_built() else (
        "torch", f"{why.removesuffix(', Horovod importable')}, but this Horovod was built without NCCL, which a GPU run needs")
    assert choose_backend("auto", launch.detect(env), torch.device("cuda", 0)) == on_gpu
    assert choose_backend("torch", launch.detect(env)) == ("torch", "--backend torch")


def test_auto_backend_under_mpi_without_horovod_is_torch_saying_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "horovod.torch", None)  # as if Horovod were not installed: import fails
    name, why = choose_backend("auto", launch.detect(MPI_RANK0))
    assert name == "torch" and why.startswith("started by mpirun, but Horovod is not importable (ModuleNotFoundError: ")


def test_auto_backend_on_a_gpu_needs_horovod_built_with_nccl():
    hvd = pytest.importorskip("horovod.torch", reason="Horovod is not installed: run `make setup-horovod`")
    name, why = choose_backend("auto", launch.detect(MPI_RANK0), torch.device("cuda", 0))
    if hvd.nccl_built():
        assert name == "horovod"
    else:  # this machine's Horovod (CPU): a GPU run would get torch.distributed, saying why
        assert (name, why) == ("torch", "started by mpirun, but this Horovod was built without NCCL, which a GPU run needs")


def test_slurm_nodelist_first_host():
    assert slurm_first_host("node[03-05,9],gpu1") == "node03"
    assert slurm_first_host("gpu1,gpu2") == "gpu1"
    assert slurm_first_host("single") == "single"


def test_slurm_port_is_shared_by_every_task_and_in_range():
    assert slurm_port("123456") == slurm_port("123456")
    assert 20000 <= slurm_port("987654321") < 40000


def test_slurm_tasks_per_node_list():
    assert [tasks_on_node("2(x3),1", n) for n in range(4)] == [2, 2, 2, 1]
    assert tasks_on_node("8", 0) == 8


def test_free_port_can_be_bound():
    import socket
    port = launch.free_port()
    with socket.socket() as s:
        s.bind(("", port))
