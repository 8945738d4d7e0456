#!/usr/bin/env bash
# Build Horovod from its PyPI sdist into .venv (PyTorch + MPI, CPU); idempotent.
#   scripts/setup_horovod.sh        needs .venv from scripts/setup.sh (torch pinned)
#
# Horovod 0.28.1 is the last release and asks for C++14, which torch >= 2.1
# headers reject; the one fix applied here raises it to C++17 in the two
# CMakeLists.txt that set it. docker/Dockerfile applies the same fix;
# tests/test_docker.py checks that the versions and the fix stay in step.
set -euo pipefail
cd "$(dirname "$0")/.."

HOROVOD_VERSION=0.28.1
# cmake 4 refuses the cmake_minimum_required(2.8.12) of Horovod's bundled gloo.
CMAKE_VERSION=3.31.10
CXX17_FIX='s/CMAKE_CXX_STANDARD 14)/CMAKE_CXX_STANDARD 17)/'
CXX17_FILES=(CMakeLists.txt horovod/torch/CMakeLists.txt)

die() { echo "setup_horovod: $*" >&2; exit 1; }

PY=.venv/bin/python
[ -x "$PY" ] || die ".venv is missing; run 'bash scripts/setup.sh test' (or 'make setup-test') first"
torch_pin=$(sed -n 's/^torch==\([^[:space:]#]*\).*/\1/p' constraints.txt)
[ -n "$torch_pin" ] || die "no 'torch==VERSION' line in constraints.txt"
torch_version() { "$PY" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || echo none; }
[ "$(torch_version)" = "$torch_pin" ] \
  || die "torch in .venv is $(torch_version), constraints.txt pins $torch_pin; run 'bash scripts/setup.sh test' first"

# Done already when the installed Horovod is this version and built with PyTorch and MPI.
built_ok() {
  local out
  out=$(.venv/bin/horovodrun --check-build 2>/dev/null) || return 1
  grep -q "Horovod v$HOROVOD_VERSION:" <<<"$out" \
    && grep -q '\[X\] PyTorch' <<<"$out" \
    && grep -q '\[X\] MPI' <<<"$out"
}
if [ -x .venv/bin/horovodrun ] && built_ok; then
  echo "setup_horovod: Horovod $HOROVOD_VERSION with PyTorch and MPI already in .venv" >&2
  exit 0
fi

command -v mpicxx >/dev/null 2>&1 \
  || die "mpicxx not found; install Open MPI: apt-get install libopenmpi-dev openmpi-bin"

PIP=("$PY" -m pip --disable-pip-version-check -q)
# Build tools for --no-build-isolation (an isolated build env would pull the newest torch).
"${PIP[@]}" install -c constraints.txt "cmake==$CMAKE_VERSION" setuptools wheel packaging cffi

work=$(mktemp -d "${TMPDIR:-/tmp}/scorch-horovod.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "setup_horovod: downloading horovod==$HOROVOD_VERSION sdist" >&2
"${PIP[@]}" download --no-deps --no-binary=:all: -d "$work" "horovod==$HOROVOD_VERSION"
tar -xzf "$work/horovod-$HOROVOD_VERSION.tar.gz" -C "$work"
src="$work/horovod-$HOROVOD_VERSION"

for f in "${CXX17_FILES[@]}"; do
  grep -q 'CMAKE_CXX_STANDARD 14)' "$src/$f" \
    || die "C++17 fix: 'CMAKE_CXX_STANDARD 14)' not found in horovod-$HOROVOD_VERSION/$f"
  sed -i "$CXX17_FIX" "$src/$f"
  grep -q 'CMAKE_CXX_STANDARD 17)' "$src/$f" || die "C++17 fix: sed did not change $f"
done

echo "setup_horovod: building Horovod $HOROVOD_VERSION (PyTorch + MPI, CPU; takes minutes)" >&2
start=$SECONDS
HOROVOD_CMAKE="$PWD/.venv/bin/cmake" \
HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_MPI=1 \
HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
MAKEFLAGS="-j$(nproc)" \
  "${PIP[@]}" install --no-build-isolation -c constraints.txt "$src"
echo "setup_horovod: built in $((SECONDS - start)) s" >&2

[ "$(torch_version)" = "$torch_pin" ] || die "torch moved to $(torch_version) (pinned $torch_pin in constraints.txt)"
built_ok || { .venv/bin/horovodrun --check-build >&2 || true; die "Horovod installed but PyTorch or MPI support is missing"; }
.venv/bin/horovodrun --check-build
