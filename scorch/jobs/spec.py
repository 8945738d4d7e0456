"""What a SLURM job is: :class:`Resources` (what it asks for, how it starts its ranks) and
:class:`JobSpec` (that plus what it runs and where it logs). Both check themselves.

The checks here are the only ones for values that reach a job script: control characters
(a newline would end the ``#SBATCH`` header early and write bare shell lines), SLURM time and
memory formats, raw sbatch options. They raise ``ValueError`` naming the field; the commands
call them with their flag names first, so a user sees the flag to change.
"""
from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

LAUNCHERS = ("srun", "mpirun")
TIME_FORMATS = "MINUTES, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"
MEMORY_FORMATS = "whole megabytes, or a whole number with K, M, G or T: e.g. 500M, 8G, 4096"

# SLURM's time formats (sbatch --time); the first field is unbounded, later ones are clock fields.
_TIME_RES = [re.compile(p) for p in (
    r"\d+", r"\d+:[0-5]?\d", r"\d+:[0-5]?\d:[0-5]?\d",
    r"\d+-(?:[01]?\d|2[0-3])", r"\d+-(?:[01]?\d|2[0-3]):[0-5]?\d", r"\d+-(?:[01]?\d|2[0-3]):[0-5]?\d:[0-5]?\d",
)]
_MEMORY_RE = re.compile(r"\d+[KMGT]?", re.IGNORECASE)
# Options of sbatch whose value is a time or a memory size, checked inside raw sbatch options.
_TIME_OPTIONS = ("--time", "-t", "--time-min")
_MEMORY_OPTIONS = ("--mem", "--mem-per-cpu", "--mem-per-gpu")


def check_text(what: str, value: str) -> None:
    """ValueError when ``value`` holds a control character (newline, tab, escape ...)."""
    bad = next((c for c in str(value) if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise ValueError(f"{what}: {value!r} holds a control character ({bad!r}); "
                         "give it without newlines, tabs or other control characters")


def check_time(what: str, value: str) -> None:
    """ValueError unless ``value`` is a SLURM time limit (or UNLIMITED / INFINITE)."""
    text = str(value)
    if text.upper() in ("UNLIMITED", "INFINITE") or any(r.fullmatch(text) for r in _TIME_RES):
        return
    raise ValueError(f"{what}: {value!r} is not a SLURM time; expected {TIME_FORMATS}")


def check_memory(what: str, value: str) -> None:
    """ValueError unless ``value`` is a SLURM memory size (``--mem``)."""
    if not _MEMORY_RE.fullmatch(str(value)):
        raise ValueError(f"{what}: {value!r} is not a SLURM memory size; expected {MEMORY_FORMATS}")


def check_sbatch_option(what: str, line: str) -> None:
    """ValueError unless ``line`` is one sbatch option (``--qos=high``, ``-p gpu``, or the same
    after ``#SBATCH``); a time or memory value in it must be in SLURM's format."""
    check_text(what, line)
    text = sbatch_option(line)
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"{what}: {line!r} is not one sbatch option ({exc})") from None
    if not words or not words[0].startswith("-"):
        raise ValueError(f"{what}: {line!r} is not an sbatch option; expected e.g. --qos=high or --mem=8G")
    name, eq, value = words[0].partition("=")
    if not eq and len(words) > 1:
        value = words[1]
    elif not eq and name.startswith("-t") and len(name) > 2:  # -t30
        name, value = "-t", name[2:]
    if name in _TIME_OPTIONS and value:
        check_time(what, value)
    if name in _MEMORY_OPTIONS and value:
        check_memory(what, value)


def sbatch_option(line: str) -> str:
    """``--qos=x`` or ``#SBATCH --qos=x`` -> ``--qos=x``."""
    text = line.strip()
    return text[len("#SBATCH"):].strip() if text.startswith("#SBATCH") else text


def option_lines(words: Sequence[str]) -> tuple[str, ...]:
    """sbatch command-line words -> one ``#SBATCH`` option per line, values ``shlex``-quoted:
    ``["--qos=high", "-p", "gpu"]`` -> ``("--qos=high", "-p gpu")``."""
    lines: list[list[str]] = []
    for word in words:
        if word.startswith("-") or not lines:
            lines.append([word])
        else:
            lines[-1].append(word)
    return tuple(" ".join(shlex.quote(w) for w in line) for line in lines)


def array_spec(indices: Sequence[int], parallel: int | None = None) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"`` (``"0-2,5%2"`` with ``parallel=2``)."""
    if not indices:
        raise ValueError("an array needs at least one index")
    parts: list[str] = []
    ordered = sorted(set(indices))
    start = prev = ordered[0]
    for i in [*ordered[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ",".join(parts) + (f"%{parallel}" if parallel else "")


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What a job asks SLURM for and how it starts its ranks.

    ``launcher`` None runs the command in the batch shell itself (one process per array task).
    ``sbatch_args`` are raw ``#SBATCH`` options, written after the others so they can override
    them; ``setup`` lines run before the launch.
    """

    nodes: int = 1
    ntasks_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int | None = None
    time: str | None = None
    mem: str | None = None
    partition: str | None = None
    account: str | None = None
    sbatch_args: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    launcher: str | None = "srun"
    signal_seconds: int = 90

    @property
    def ntasks(self) -> int:
        return self.nodes * self.ntasks_per_node

    def resources(self) -> dict[str, Any]:
        """The :class:`Resources` fields of this object, by name (for ``JobSpec(**...)``)."""
        return {f.name: getattr(self, f.name) for f in fields(Resources)}


def check_resources(r: Resources, name: Callable[[str], str] = str) -> None:
    """ValueError for the first bad field of ``r``, named ``name(field)`` (a flag, for a CLI)."""
    for key, least in (("nodes", 1), ("ntasks_per_node", 1), ("gpus_per_node", 0), ("cpus_per_task", 1),
                       ("signal_seconds", 1)):
        value = getattr(r, key)
        if value is None and key == "cpus_per_task":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"{name(key)}: expected a whole number >= {least}, got {value!r}")
    if r.launcher is not None and r.launcher not in LAUNCHERS:
        raise ValueError(f"{name('launcher')}: {r.launcher!r} is not one of {', '.join(LAUNCHERS)}")
    for key in ("time", "mem", "partition", "account"):
        value = getattr(r, key)
        if value is None:
            continue
        check_text(name(key), value)
        if not str(value).strip():
            raise ValueError(f"{name(key)}: expected a non-empty value")
    if r.time is not None:
        check_time(name("time"), r.time)
    if r.mem is not None:
        check_memory(name("mem"), r.mem)
    for line in r.setup:
        check_text(name("setup"), line)
        if not line.strip():
            raise ValueError(f"{name('setup')}: {line!r} must be one non-empty line")
    for line in r.sbatch_args:
        check_sbatch_option(name("sbatch_args"), line)


@dataclass(frozen=True, kw_only=True)
class JobSpec(Resources):
    """One sbatch script: the keyword arguments are the whole schema (see :func:`scorch.jobs.render`).

    ``commands`` holds one command, run by the job (or by every task of an ``array``, e.g.
    ``"0-3"``), or one command per array index: element *i* runs ``commands[i]``. ``log_dir`` is
    a literal directory, ``log_name`` an sbatch filename pattern (``%j``, ``%A_%a``).

    ``requeue`` picks the shape. True (a training run or a sweep): SLURM warns with SIGUSR1
    ``signal_seconds`` before the time limit, the script forwards it to the launcher, the ranks
    checkpoint and exit 3, and the job requeues itself; a SIGTERM (``scancel``) is forwarded
    too, but the job is not requeued. False (a generation array): each task runs its command
    with ``exec``; signals reach it directly.
    """

    commands: tuple[tuple[str, ...], ...]
    job_name: str
    chdir: str
    log_dir: str
    log_name: str = "slurm-%j.out"
    array: str | None = None
    requeue: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "commands", tuple(tuple(str(p) for p in c) for c in self.commands))
        object.__setattr__(self, "sbatch_args", tuple(self.sbatch_args))
        object.__setattr__(self, "setup", tuple(self.setup))
        if not self.commands or any(not c for c in self.commands):
            raise ValueError("commands: expected at least one non-empty command")
        if self.array is None and len(self.commands) != 1:
            raise ValueError(f"commands: {len(self.commands)} commands need an array")
        check_resources(self)
        for key in ("job_name", "chdir", "log_dir", "log_name", "array"):
            value = getattr(self, key)
            if key != "array" or value is not None:
                check_text(key, value)
                if not value:
                    raise ValueError(f"{key}: expected a non-empty value")
        for command in self.commands:
            for part in command:
                check_text("commands", part)
        if "/" in self.log_name:
            raise ValueError(f"log_name: {self.log_name!r} is a file name pattern, not a path")
