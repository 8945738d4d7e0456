"""The catalogue's one promise, checked the same way for every command: exit code 2 (or the code the
case names), exactly one line from scorch on stderr naming what was wrong, where and what was
expected, no traceback, and not one byte changed in any directory the case touches.

A case is a row of a table (one table per command, in ``tests/bad_input/test_*.py``)::

    "--lr 0": Case(["--lr", "0"], "--lr", "finite number > 0"),

``@tmp`` in an argument or a file name is the case's own directory (the working directory while it
runs); ``files`` are written there first.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TMP = "@tmp"
LOG_LINE = re.compile(r"^scorch(\[rank \d+\])?: ")  # scorch's own log lines (INFO on rank 0), not errors


@dataclass(frozen=True)
class Case:
    """One bad input: the command line, the words its one line must hold, the exit code."""

    args: Sequence[str]
    words: tuple[str, ...]
    code: int = 2
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    xfail: str | None = None  # a defect another lane fixes: strict, so it must be removed once fixed
    absent: tuple[str, ...] = ()  # words the line must not hold

    def __init__(self, args: Sequence[str], *words: str, code: int = 2, files: Mapping[str, str | bytes] | None = None,
                 xfail: str | None = None, absent: Sequence[str] = ()):
        object.__setattr__(self, "args", tuple(args))
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "files", dict(files or {}))
        object.__setattr__(self, "xfail", xfail)
        object.__setattr__(self, "absent", tuple(absent))

    def argv(self, tmp: Path) -> list[str]:
        return [a.replace(TMP, str(tmp)) for a in self.args]

    def write_files(self, tmp: Path) -> None:
        for name, text in self.files.items():
            path = Path(name.replace(TMP, str(tmp)))
            path = path if path.is_absolute() else tmp / path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text if isinstance(text, bytes) else text.encode())


def params(table: Mapping[str, Case]) -> list[pytest.param]:  # type: ignore[type-arg]
    """The table as pytest parameters, each with its name as id (xfail rows marked strict)."""
    marks = lambda c: [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []  # noqa: E731
    return [pytest.param(case, id=name, marks=marks(case)) for name, case in table.items()]


def checksums(root: Path, ignore: Sequence[str] = ()) -> dict[str, str]:
    """A checksum of every path under ``root`` (relative): of its kind, mode and bytes. Python's own
    ``__pycache__`` of an imported user file is left out, and so are the paths in ``ignore``
    (relative to ``root``) with everything under them."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in [*list(dirnames), *sorted(filenames)]:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if rel in ignore:
                if name in dirnames:
                    dirnames.remove(name)
                continue
            st = path.lstat()
            h = hashlib.sha256(f"{stat.S_IFMT(st.st_mode)} {stat.S_IMODE(st.st_mode)}".encode())
            if stat.S_ISREG(st.st_mode):
                h.update(path.read_bytes())
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            out[rel] = h.hexdigest()
    return out


def changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """What differs between two :func:`checksums`: ``+new``, ``-gone``, ``~changed``."""
    return sorted([f"+{p}" for p in after.keys() - before.keys()] + [f"-{p}" for p in before.keys() - after.keys()]
                  + [f"~{p}" for p in before.keys() & after.keys() if before[p] != after[p]])


def error_line(prog: str, err: str, code: int) -> str:
    """The one line scorch printed: every other stderr line must be one of scorch's log lines."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if not LOG_LINE.match(line)]
    assert len(errors) == 1, f"expected one error line, got {errors}"
    assert re.match(rf"^{re.escape(prog)}(\[rank \d+\])?: (error|failed): ", errors[0]), errors[0]
    return errors[0]


def check(prog: str, case: Case, code: int, err: str, tmp: Path) -> str:
    """Assert the promise for one finished case; returns its line. The words are looked for with
    the case's directory written as ``@tmp`` (so that no word is found in a path by chance)."""
    assert code == case.code, f"exit code {code}, expected {case.code}; stderr: {err}"
    line = error_line(prog, err, case.code).replace(str(tmp), TMP)
    missing = [w for w in case.words if w not in line]
    assert not missing, f"{missing} not in {line!r}"
    unwanted = [w for w in case.absent if w in line]
    assert not unwanted, f"{unwanted} in {line!r}"
    return line


def run_in_process(main: Callable[[list[str]], int], prog: str, case: Case, tmp: Path, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch, ignore: Sequence[str] = ()) -> str:
    """Run ``case`` through ``main`` with ``tmp`` as the working directory; the promise is checked on
    everything under ``tmp`` but the paths in ``ignore`` (relative to ``tmp``)."""
    case.write_files(tmp)
    monkeypatch.chdir(tmp)
    before = checksums(tmp, ignore)
    capsys.readouterr()
    code = main(case.argv(tmp))
    err = capsys.readouterr().err
    line = check(prog, case, code, err, tmp)
    changed = changes(before, checksums(tmp, ignore))
    assert not changed, f"{changed} after: {line}"
    return line
