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
