"""Where a run's files are when the run directory has moved (copied to another path or machine,
or read from another working directory): one rule for ``--resume``, ``load_run`` and
``scorch-test``.

- The model and dataset files: the paths in ``config.json`` where they are files from here, else
  the run directory's own copies of them (:func:`scorch.rundir.directory.source_names`).
- A relative ``--dataset-path``: as given where it exists from here; else relative to the run
  directory as it was (meta.json's ``dataset_path_from_run``, recorded by every session: data that
  moved with the run, such as ``project/data`` beside ``project/runs/NAME``); else from where the
  run was started (meta.json's ``cwd``); else as given.

Nothing here writes; torch is not imported.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from .directory import source_names
from .layout import RunLayout

log = logging.getLogger(__name__)

FROM_RUN = "dataset_path_from_run"  # meta.json: a relative --dataset-path, relative to the run directory


def _meta(run_dir: Path) -> dict[str, Any]:
    try:
        meta = json.loads(RunLayout(run_dir).meta.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def copies(run_dir: str | os.PathLike, model: str, dataset: str) -> tuple[Path, Path]:
    """The run directory's copies of the model and dataset files named ``model`` and ``dataset``."""
    names = source_names(model, dataset)
    return Path(run_dir) / names[0], Path(run_dir) / names[1]


def user_files(run_dir: str | os.PathLike, model: str, dataset: str, who: str,
               given: tuple[str, ...] = ()) -> tuple[str, str]:
    """``(model, dataset)``: each as configured where it is a file, else the run's copy where there is
    one (said in the log); as configured otherwise (its loader says it is missing), and where its role
    is in ``given`` (named anew on the command line)."""
    found = []
    for role, path, copy in zip(("model", "dataset"), (model, dataset), copies(run_dir, model, dataset)):
        if role not in given and not os.path.isfile(path) and copy.is_file():
            log.info("%s: the %s file %s is not here; using the run's copy %s", who, role, path, copy)
            path = str(copy)
        found.append(path)
    return found[0], found[1]


def dataset_path(run_dir: str | os.PathLike, path: str | None, who: str) -> str | None:
    """The run's ``--dataset-path`` as it is found from here (see the module's doc)."""
    if not path or os.path.isabs(path) or os.path.exists(path):
        return path
    meta = _meta(Path(run_dir))
    candidates = []
    if isinstance(meta.get(FROM_RUN), str):
        candidates.append(os.path.normpath(os.path.join(run_dir, meta[FROM_RUN])))
    if isinstance(meta.get("cwd"), str):
        candidates.append(os.path.join(meta["cwd"], path))
    for candidate in candidates:
        if os.path.exists(candidate):
            log.info("%s: --dataset-path %s is not here; using %s (where it is relative to the run)", who, path, candidate)
            return candidate
    return path


def record(run_dir: str | os.PathLike, path: str | None, previous: dict[str, Any]) -> dict[str, str]:
    """What meta.json keeps of a relative ``--dataset-path`` that exists: the path relative to the run
    directory (else what the ``previous`` meta.json kept)."""
    if not path or os.path.isabs(path) or not os.path.exists(path):
        kept = previous.get(FROM_RUN)
        return {FROM_RUN: kept} if isinstance(kept, str) else {}
    return {FROM_RUN: os.path.relpath(os.path.abspath(path), os.path.abspath(run_dir))}
