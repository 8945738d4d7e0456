"""Shared test setup: run from the repo root with the .venv's python."""
import os

pytest_plugins = ["tests.slurm_fixture"]

# Open MPI refuses root without these; CI runs as root.
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
os.environ.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
os.environ.setdefault("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
