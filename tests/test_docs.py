"""The documentation runs as written: every shell, console and Python block of README.md, docs/*.md,
docker/README.md and examples/*/README.md carries a marker (an HTML comment on the line before it), and
the blocks marked to run do, in order, file by file, like a newcomer pasting them.

    <!-- doc-test: run -->            run here (bash -euo pipefail, the venv's python)
    <!-- doc-test: slurm -->          run in the SLURM test, against the private cluster of tests/slurm_fixture.py
    <!-- doc-test: skip REASON -->    not run, and why (a GPU, Docker, a second machine, a file's shape ...)

Each file runs in its own temporary directory (the working directory, as the repository root is for a
user) holding a copy of examples/ and the tiny fixture files the docs call m.py (an MLP) and d.py (three
Gaussian blobs), with the venv's scripts first on PATH. In a ``console`` block the lines starting with
``$ `` are the commands; the rest is their output, which is not compared.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import BIN, DATASET, MODEL, REPO, env

DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), REPO / "docker" / "README.md",
               *(REPO / "examples").glob("*/README.md")])
LANGUAGES = {"bash", "sh", "shell", "console", "python"}
MARKER = re.compile(r"<!--\s*doc-test:\s*(run|slurm|skip)\b\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
BLOCK_TIMEOUT = 120


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    language: str
    code: str
    mode: str | None  # run, slurm, skip; None: unmarked
    reason: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"

    def script(self) -> tuple[list[str], str]:
        """The command that runs the block, and its standard input."""
        if self.language == "python":
            return [sys.executable, "-"], self.code
        code = self.code
        if self.language == "console":
            code = "\n".join(line[2:] for line in code.splitlines() if line.startswith("$ "))
        return ["bash", "-euo", "pipefail", "-s"], code


def blocks(doc: Path) -> list[Block]:
    text = doc.read_text()
    found = []
    for m in FENCE.finditer(text):
        language = m.group(1).lower()
        if language not in LANGUAGES:
            continue
        before = text[:m.start()].rstrip().splitlines()
        marker = MARKER.fullmatch(before[-1].strip()) if before else None
        found.append(Block(doc, text.count("\n", 0, m.start()) + 1, language, m.group(2),
                           marker.group(1) if marker else None, marker.group(2) if marker else ""))
    return found


def workdir(tmp: Path) -> Path:
    """A newcomer's checkout, as far as the docs' commands look: examples/, m.py, d.py."""
    shutil.copytree(REPO / "examples", tmp / "examples", ignore=shutil.ignore_patterns("gen_cache", "__pycache__"))
    shutil.copy(MODEL, tmp / "m.py")
    shutil.copy(DATASET, tmp / "d.py")
    return tmp


def run_block(block: Block, cwd: Path, extra_env: dict[str, str] | None = None) -> None:
    e = env()
    e.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg", **(extra_env or {}))
    e["PATH"] = f"{BIN}{os.pathsep}{e['PATH']}"
    argv, stdin = block.script()
    proc = subprocess.run(argv, input=stdin, cwd=cwd, env=e, capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    assert proc.returncode == 0, f"{block.where}: exit code {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def test_every_block_is_marked_and_every_skip_says_why() -> None:
    unmarked = [b.where for doc in DOCS for b in blocks(doc) if b.mode is None]
    assert not unmarked, f"blocks without a <!-- doc-test: run|slurm|skip REASON --> line before them: {unmarked}"
    silent = [b.where for doc in DOCS for b in blocks(doc) if b.mode == "skip" and len(b.reason) < 10]
    assert not silent, f"skipped blocks that do not say why: {silent}"
    assert sum(b.mode == "run" for doc in DOCS for b in blocks(doc)) >= 10  # the test is not vacuous


@pytest.mark.parametrize("doc", [d for d in DOCS if any(b.mode == "run" for b in blocks(d))],
                         ids=lambda d: str(d.relative_to(REPO)))
def test_the_runnable_blocks_run_as_written(doc: Path, tmp_path: Path) -> None:
    cwd = workdir(tmp_path)
    for block in blocks(doc):
        if block.mode == "run":
            run_block(block, cwd)


@pytest.mark.slow
def test_the_slurm_blocks_run_on_a_real_slurm(slurm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    docs = [d for d in DOCS if any(b.mode == "slurm" for b in blocks(d))]
    assert docs, "no block is marked doc-test: slurm"
    for i, doc in enumerate(docs):
        cwd = workdir(tmp_path / f"{i}-{doc.stem}")
        for block in blocks(doc):
            if block.mode == "slurm":
                started = time.time()
                run_block(block, cwd, slurm.env)
                wait_for_jobs(slurm, block)
                print(f"{block.where}: {time.time() - started:.1f} s")


def wait_for_jobs(slurm, block: Block, timeout: float = BLOCK_TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    """Until every job the block submitted has ended (the next block may read what they wrote)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = slurm.run(["squeue", "-h", "-o", "%i %T"]).stdout.split()
        if not out:
            return
        time.sleep(1)
    raise AssertionError(f"{block.where}: jobs still queued after {timeout} s: {out}")


def test_the_docker_example_names_files_the_image_has() -> None:
    """docker/README.md mounts examples/digits at /work/digits: every /work/digits path it names exists there,
    and the image installs what the example imports (scikit-learn: the examples extra)."""
    text = (REPO / "docker" / "README.md").read_text()
    assert '-v "$PWD/examples/digits:/work/digits:ro"' in text
    named = set(re.findall(r"/work/digits/(\S+)", text))
    assert named and all((REPO / "examples" / "digits" / n).is_file() for n in named), named
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(r'pip install [^\n]*"\.\[[^\]]*\bexamples\b[^\]]*\]"', dockerfile)
