"""The ``@generator`` decorator and loading the generators of a ``datasets.py``."""
from __future__ import annotations

import hashlib
import importlib.util
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..jobs.spec import check_sbatch_option, option_lines
from ._params import Params
from .errors import GenError

DATASETS_FILE = "datasets.py"
_ATTR = "__scorch_gen__"
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_MEMORY_UNITS_MB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

GeneratorFunc = Callable[[int, Any], Iterable[Any]]


def sbatch_lines(what: str, options: str | Iterable[str]) -> tuple[str, ...]:
    """sbatch options (``"--qos=test -p gpu"`` or its words) as ``#SBATCH`` lines, each checked
    (one option, no control characters, SLURM time and memory formats); GenError naming ``what``."""
    try:
        words = shlex.split(options) if isinstance(options, str) else [str(o) for o in options]
        lines = option_lines(words)
        for line in lines:
            check_sbatch_option(what, line)
    except ValueError as exc:
        raise GenError(str(exc) if str(exc).startswith(what) else f"{what}: {exc}") from None
    return lines


def parse_memory_mb(memory: str | int) -> int:
    """``"1GB"``, ``"512M"``, ``"2G"`` or an int (MB) as whole megabytes (SLURM's ``--mem``)."""
    if isinstance(memory, int) and not isinstance(memory, bool) and memory > 0:
        return memory
    match = _MEMORY_RE.match(str(memory))
    if not match:
        raise GenError(f"memory={memory!r}: expected a size like '1GB', '512MB' or '2G'")
    mb = float(match.group(1)) * _MEMORY_UNITS_MB[match.group(2).upper()]
    if mb < 1:
        raise GenError(f"memory={memory!r}: at least 1MB is needed")
    return round(mb)


@dataclass(frozen=True)
class GeneratorSpec:
    """What ``@generator`` recorded about one dataset."""

    name: str
    func: GeneratorFunc
    save_every: int
    params_cls: type[Params]
    memory_mb: int
    slurm_options: tuple[str, ...]  # one sbatch option per #SBATCH line

    def make_params(self, values: Mapping[str, Any] | Params | None = None) -> Params:
        """A ``params_cls`` instance from non-default values (or an instance, checked)."""
        if isinstance(values, Params):
            if type(values) is not self.params_cls:
                raise GenError(f"dataset {self.name} takes {self.params_cls.__name__}, "
                               f"got {type(values).__name__}")
            return values
        return self.params_cls(**dict(values or {}))


def generator(save_every: int, params_cls: type[Params], memory: str | int = "1GB",
              slurm_options: str | Iterable[str] = "") -> Callable[[GeneratorFunc], GeneratorFunc]:
    """Mark ``func(size, params)`` (yielding ``(x, y)`` samples) as a dataset.

    Args:
        save_every: each job writes a chunk file every this many samples.
        params_cls: a ``scorch.gen.Params`` subclass with the parameters and defaults.
        memory: memory per SLURM job, e.g. ``"1GB"``.
        slurm_options: extra ``sbatch`` options, e.g. ``"--qos=test"``; each becomes an
            ``#SBATCH`` line of the job script.

    The function is returned unchanged (still callable); the dataset's name is
    the function's name.
    """
    if not isinstance(save_every, int) or isinstance(save_every, bool) or save_every < 1:
        raise GenError(f"@generator(save_every={save_every!r}): expected a positive int")
    if not (isinstance(params_cls, type) and issubclass(params_cls, Params)):
        raise GenError(f"@generator(..., {params_cls!r}): expected a scorch.gen.Params subclass")
    params_cls.defaults()  # validate the declared defaults now, at import time
    memory_mb = parse_memory_mb(memory)
    options = sbatch_lines("@generator(slurm_options=...)", slurm_options)

    def decorate(func: GeneratorFunc) -> GeneratorFunc:
        if not callable(func) or not _NAME_RE.match(getattr(func, "__name__", "")):
            raise GenError(f"@generator must decorate a named function, got {func!r}")
        spec = GeneratorSpec(func.__name__, func, save_every, params_cls, memory_mb, options)
        setattr(func, _ATTR, spec)
        return func

    return decorate


def load_datasets(directory: str | Path) -> dict[str, GeneratorSpec]:
    """Import ``DIRECTORY/datasets.py`` and return its decorated generators by name."""
    path = Path(directory).resolve() / DATASETS_FILE
    if not path.is_file():
        raise GenError(f"no {DATASETS_FILE} in {path.parent}; point scorch-gen at the "
                       "directory holding it (--dir DIR)")
    return load_datasets_file(path)


def load_datasets_file(path: str | Path) -> dict[str, GeneratorSpec]:
    """Import the generators file ``path`` (runs its code) and return its generators by name."""
    path = Path(path).resolve()
    if not path.is_file():
        raise GenError(f"{path}: no such generators file (expected a datasets.py)")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    module_name = f"_scorch_gen_datasets_{digest}"
    if module_name in sys.modules:
        module = sys.modules[module_name]
    else:
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except GenError as exc:
            del sys.modules[module_name]
            raise GenError(f"{path}: {exc}") from exc
        except (Exception, SystemExit) as exc:  # SystemExit: a script's exit() would end scorch-gen silently
            del sys.modules[module_name]
            line = _user_line(exc, path)
            raise GenError(f"{path}{line}: importing it raised {type(exc).__name__}: {exc}") from exc
    found = {}
    for value in vars(module).values():
        spec_ = getattr(value, _ATTR, None)
        if isinstance(spec_, GeneratorSpec) and getattr(value, "__module__", None) == module_name:
            found[spec_.name] = spec_
    if not found:
        raise GenError(f"{path} defines no dataset; decorate a generator function with "
                       "@scorch.gen.generator(save_every, ParamsClass)")
    return found


def get_spec(directory: str | Path, name: str) -> GeneratorSpec:
    """The generator called *name* in ``DIRECTORY/datasets.py``, or a GenError listing them."""
    specs = load_datasets(directory)
    if name not in specs:
        raise GenError(f"no dataset {name!r} in {Path(directory) / DATASETS_FILE}; "
                       f"defined: {', '.join(sorted(specs))}")
    return specs[name]


def _user_line(exc: BaseException, path: Path) -> str:
    """``:LINE`` of the innermost traceback frame inside *path*, if any."""
    tb = exc.__traceback__
    line = ""
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename) == path:
            line = f":{tb.tb_lineno}"
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.lineno:
        line = f":{exc.lineno}"
    return line
