#!/usr/bin/env bash
# Create .venv at the repo root with scorch installed; idempotent.
#   scripts/setup.sh            core + mpi4py + examples
#   scripts/setup.sh test       also the test-only packages and the trackers (mlflow, wandb)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="mpi,examples,report"
[ "${1:-}" = "test" ] && extras="$extras,test,trackers"

# Open MPI (mpirun, and mpicc for mpi4py) from Debian when missing.
if ! command -v mpirun >/dev/null 2>&1 || ! command -v mpicc >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Open MPI from Debian" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenmpi-dev openmpi-bin >/dev/null
  else
    echo "setup: Open MPI is missing; install it with: sudo apt-get install libopenmpi-dev openmpi-bin" >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
# torch first, pinned, so that nothing later pulls a CUDA build.
if ! .venv/bin/python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
  "${PIP[@]}" install "torch==2.13.0"
fi
stamp=".venv/.scorch-setup-$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  "${PIP[@]}" install -c constraints.txt -e ".[$extras]"
  touch "$stamp"
fi
.venv/bin/python -c 'import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith("2.13.0") else f"setup: torch moved to {v}")'
