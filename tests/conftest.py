"""Shared test setup: run from the repo root with the .venv's python."""
import os

pytest_plugins = ["tests.slurm_fixture"]

# Open MPI refuses root without these; CI runs as root.
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
os.environ.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
os.environ.setdefault("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
# A rank waiting in MPI (Horovod's background thread, mpi4py) yields its core instead of spinning: with
# more processes than free cores (a shared 2-core CI machine) spinning ranks starve each other.
os.environ.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")


def pytest_sessionfinish(session, exitstatus):
    """Child processes of the test process (DataLoader workers of an in-process run, a local job
    pool) that outlived their test would make the interpreter wait for them at its exit, forever
    for workers that ignore SIGTERM: kill them, name them and fail the session instead of hanging."""
    import multiprocessing
    import sys

    left = multiprocessing.active_children()
    for child in left:
        child.kill()
        child.join(5)
    if left:
        sys.stderr.write(f"\nconftest: {len(left)} child process(es) outlived their test and were killed: "
                         f"{', '.join(c.name for c in left)}\n")
        session.exitstatus = 1
