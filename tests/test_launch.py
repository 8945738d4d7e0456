from scorch import _launch
from scorch._elastic import child_argv


def test_plain_process_is_rank_0_of_1():
    info = _launch.detect({})
    assert (info.launcher, info.rank, info.world_size, info.distributed) == ("none", 0, 1, False)


def test_open_mpi_variables():
    info = _launch.detect({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "8",
                           "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"})
    assert (info.launcher, info.rank, info.world_size, info.local_rank, info.local_world_size) == ("mpirun", 3, 8, 1, 2)


def test_horovodrun_is_told_apart_from_mpirun():
    info = _launch.detect({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2", "HOROVOD_HOSTNAME": "n1"})
    assert info.launcher == "horovodrun"


def test_torchrun_variables_win():
    info = _launch.detect({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                           "TORCHELASTIC_RUN_ID": "x", "SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_STEP_ID": "0"})
    assert (info.launcher, info.rank, info.world_size) == ("torchrun", 1, 2)


def test_srun_step_but_not_a_bare_batch_script():
    step = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0",
            "SLURM_TASKS_PER_NODE": "4(x2)"}
    info = _launch.detect(step)
    assert (info.launcher, info.rank, info.world_size, info.local_rank, info.local_world_size) == ("srun", 5, 8, 1, 4)
    batch = {k: v for k, v in step.items() if k != "SLURM_STEP_ID"}
    assert _launch.detect(batch).launcher == "none"


def test_slurm_nodelist_first_host():
    assert _launch.slurm_first_host("node[03-05,9],gpu1") == "node03"
    assert _launch.slurm_first_host("gpu1,gpu2") == "gpu1"
    assert _launch.slurm_first_host("single") == "single"


def test_slurm_port_is_shared_by_every_task_and_in_range():
    assert _launch.slurm_port("123456") == _launch.slurm_port("123456")
    assert 20000 <= _launch.slurm_port("987654321") < 40000


def test_child_argv_drops_launch_flags_and_pins_the_name():
    argv = ["--model", "m.py", "--nproc-per-node", "2", "--master-port=1234", "--epochs", "3"]
    assert child_argv(argv, "run1") == ["--model", "m.py", "--epochs", "3", "--name", "run1"]
