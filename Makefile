# One place for what CI runs: `make test` is what .ci/run calls.
SHELL := /bin/bash
PY := .venv/bin/python
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
# Quiet Open MPI on machines without InfiniBand / with few cores.
export OMPI_MCA_btl_vader_single_copy_mechanism := none
export OMPI_MCA_rmaps_base_oversubscribe := 1

.PHONY: setup setup-test setup-horovod demo test lint clean bench

setup:
	bash scripts/setup.sh

setup-test:
	bash scripts/setup.sh test
	bash scripts/setup_slurm.sh

# Needs .venv (setup-test); builds Horovod 0.28.1 from source once (~5 min).
setup-horovod: setup-test
	bash scripts/setup_horovod.sh

demo: setup
	bash examples/digits/run_demo.sh

# ruff and mypy (configured in pyproject.toml, pinned in the test extra) first: seconds, not minutes.
test: setup-test setup-horovod
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m mypy
	$(PY) -m pytest -q -ra --durations=25 $(PYTEST_ARGS)

# The same checks alone. LINT_PATHS narrows ruff.
LINT_PATHS ?= scorch tests bench examples scripts
lint:
	bash scripts/setup.sh test
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m mypy

clean:
	rm -rf .venv runs .pytest_cache

# scorch against a hand-written loop, Lightning and hand-written DDP (~15 min on 2 cores):
# writes bench/results/<date>.json and docs/benchmarks.md. Lightning gets its own venv.
bench: setup
	bash bench/setup_lightning.sh || echo "bench: Lightning could not be installed; its columns are skipped"
	$(PY) -m bench $(BENCH_ARGS)
