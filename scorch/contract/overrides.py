"""Config files and ``--set KEY=VALUE`` overrides, parsed as literals (never evaluated as code).

Precedence, lowest first: TrainConfig defaults < ``--config`` file < command-line flags < ``--set``.
Keys are TrainConfig fields (``batch_size`` or ``batch-size``), or ``model.NAME``, ``socket.NAME``,
``dataset.NAME`` and ``shared.NAME`` for the settings the parts declare (:mod:`scorch.contract.parts`). On scorch-train's command
line ``--KEY=VALUE`` (e.g. ``--model.n_filters=10``) is shorthand for ``--set KEY=VALUE`` for any
KEY that is not a flag of its own.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import logging
import os
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import INVOCATION_KEYS, TrainConfig, check_file_name, check_path, check_value, type_name, value_fits
from ..errors import ScorchError
from ..rundir.layout import RunLayout, is_checkpoint
from . import nearest

log = logging.getLogger(__name__)

SETTINGS_PREFIXES = {"model": "model_settings", "dataset": "dataset_settings", "socket": "socket_settings",
                     "shared": "shared_settings"}
_warned: set[tuple[str, tuple[str, ...]]] = set()  # (file, unknown keys) already warned about in this process


def parse_value(text: str) -> Any:
    """A Python/JSON literal (number, bool, None, string, list, dict), else the text itself."""
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_assignment(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScorchError(f"--set {item!r}: expected KEY=VALUE, e.g. --set lr=0.01 or --set model.n_filters=16")
    return key, parse_value(value)


def load_config_file(path: str, what: str = "--config") -> dict[str, Any]:
    """Read YAML, JSON or TOML (by extension) into a flat-or-nested dict; errors name ``what`` and the file."""
    label = f"{what} {path}" if what else path
    if not os.path.isfile(path):
        raise ScorchError(f"{what}: {'is a directory' if os.path.isdir(path) else 'file not found'}: {path!r}")
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if ext == ".json":
            data = json.loads(raw)
        elif ext == ".toml":
            import tomllib  # only for a TOML config file (Python 3.11+)

            data = tomllib.loads(raw.decode())
        elif ext in (".yaml", ".yml"):
            import yaml  # only for a YAML config file

            data = yaml.safe_load(raw)
        else:
            raise ScorchError(f"{label}: unknown extension {ext!r}, expected .yaml, .yml, .json or .toml")
    except ScorchError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ScorchError(f"{label}: cannot parse it as {ext[1:].upper()}: {first}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ScorchError(f"{label}: expected a mapping of settings at the top level, got {type(data).__name__}")
    return data


def flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """``{"model": {"n": 1}}`` and ``{"model_settings": {"n": 1}}`` -> ``{"model.n": 1}``; other keys as they are."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key).replace("-", "_")
        prefix = next((p for p, f in SETTINGS_PREFIXES.items() if key in (f, p)), None)
        if prefix and isinstance(value, dict):
            for sub, v in value.items():
                out[f"{prefix}.{sub}"] = v
        else:
            out[key] = value
    return out


def apply(base: Mapping[str, Any], updates: Mapping[str, Any], where: str, cls: type) -> dict[str, Any]:
    """Merge flat ``updates`` into a dict of ``cls`` fields, checking names and types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.name not in SETTINGS_PREFIXES.values()}
    out = dict(base)
    for key, value in updates.items():
        norm = key.replace("-", "_")
        prefix, dot, sub = norm.partition(".")
        if dot and prefix in SETTINGS_PREFIXES:
            target = SETTINGS_PREFIXES[prefix]
            out[target] = {**out.get(target, {}), sub: value}
            continue
        if norm not in fields:
            raise UnknownSetting(f"{where}: unknown setting {key!r}; " + nearest.hint(
                norm, fields, "scorch-train --help lists every setting (and model.NAME, socket.NAME, dataset.NAME, "
                "shared.NAME for the parts')"), where, key, nearest.nearest(norm, fields) is not None)
        if isinstance(value, float) and value.is_integer() and hints[norm] is int:
            value = int(value)
        if not value_fits(value, hints[norm]):
            raise ScorchError(f"{where}: {key} = {value!r} is a {type(value).__name__}, expected {type_name(hints[norm])}")
        out[norm] = value
    return out


class UnknownSetting(ScorchError):
    """A key that is no TrainConfig field: ``where`` it was given, the ``key``, and whether a
    field close to it was suggested."""

    def __init__(self, message: str, where: str, key: str, guessed: bool):
        super().__init__(message)
        self.where, self.key, self.guessed = where, key, guessed


def _part_hint(exc: UnknownSetting, files: Mapping[str, Any]) -> ScorchError:
    """``--set width=8`` where a part takes ``width``: suggest ``model.width`` (``shared.width``
    when several parts take it), reading the files given; else ``exc`` as it is."""
    if not (isinstance(files.get("model"), str) and isinstance(files.get("dataset"), str)):
        return exc
    try:
        from .userfiles import declared_settings, load_dataset_file, load_model_file  # torch: only for this message

        model, dataset = load_model_file(files["model"]), load_dataset_file(files["dataset"])
        parts = {"model": declared_settings(model.module, model.network_cls, 0), "socket": model.socket_declared(),
                 "dataset": dataset.declared()}
    except (ScorchError, ImportError):
        return exc
    norm = exc.key.replace("-", "_")
    taking = [prefix for prefix, declared in parts.items() if norm in (declared or {})]
    if taking:
        prefix = taking[0] if len(taking) == 1 else "shared"
        return ScorchError(f"{exc.where}: unknown setting {exc.key!r}; did you mean {prefix}.{norm}?")
    if exc.guessed:
        return exc
    for prefix, declared in parts.items():
        guess = nearest.nearest(norm, declared or {})
        if guess is not None:
            return ScorchError(f"{exc.where}: unknown setting {exc.key!r}; did you mean {prefix}.{guess}?")
    return exc


def read_saved(file: str | os.PathLike) -> dict[str, Any]:
    """A run's saved settings (its ``config.json``), the one reader of them: ``{field: value}`` of the
    TrainConfig fields it holds, their types checked (ranges are checked where a TrainConfig is
    built). Keys this scorch does not know (written by another scorch version) are left out, with one
    warning naming them; a file that cannot be read, is no JSON object, or holds a known setting of
    another type is one ScorchError line naming the file."""
    file = Path(file)
    try:
        data = json.loads(file.read_bytes())
    except (OSError, ValueError) as exc:
        raise ScorchError(f"{file}: not readable JSON ({exc}); expected the settings scorch-train writes") from exc
    if not isinstance(data, dict):
        raise ScorchError(f"{file}: expected a JSON object of settings, found {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(TrainConfig) if f.name not in SETTINGS_PREFIXES.values()}
    flat = flatten(data)
    unknown = tuple(k for k in flat if k not in fields and k.partition(".")[0] not in SETTINGS_PREFIXES)
    if unknown and (str(file), unknown) not in _warned:
        _warned.add((str(file), unknown))
        log.warning("%s: left out setting(s) this scorch does not know: %s (written by another scorch version?)",
                    file, ", ".join(unknown))
    values = apply({}, {k: v for k, v in flat.items() if k not in unknown}, str(file), TrainConfig)
    for prefix, name in SETTINGS_PREFIXES.items():  # an empty {} of settings is kept as saved
        if isinstance(data.get(name, data.get(prefix)), dict):
            values.setdefault(name, {})
    return values


def saved_config(run_dir: str | os.PathLike, who: str) -> TrainConfig:
    """Run ``run_dir``'s TrainConfig from its config.json (:func:`read_saved`), as that run trained:
    ``resume``, ``auto_resume`` and ``overwrite`` (how its last invocation ran) are off. ``who``
    (``load_run``, ``RUN_DIR``) starts the one-line ScorchError when ``run_dir`` is no run."""
    layout = RunLayout(run_dir)
    expected = f"expected a run directory as scorch-train writes it (RUN_ROOT/NAME with {layout.config.name})"
    if not layout.path.is_dir():
        raise ScorchError(f"{who}: {layout.path} is not a directory; {expected}")
    if not layout.config.is_file():
        raise ScorchError(f"{who}: {layout.path} has no {layout.config.name}; {expected}")
    values = read_saved(layout.config)
    missing = [k for k in ("model", "dataset") if not values.get(k)]
    if missing:
        raise ScorchError(f"{layout.config} names no {missing[0]} file; {expected}")
    values.update(resume=False, auto_resume=False, overwrite=False)
    try:
        return TrainConfig(**values)
    except ScorchError as exc:
        raise ScorchError(f"{layout.config}: {exc}") from exc


def resolve(flags: Mapping[str, Any], sets: Sequence[tuple[str, str]] = ()) -> TrainConfig:
    """The run's config from the flags given (``{field: value}``, only those given) and ``--set`` items
    (``(where, "KEY=VALUE")``, in command-line order). Precedence, lowest first: defaults, ``--config``
    file, flags, ``--set``; on ``--resume`` the run's saved ``config.json`` is the base, so that only
    what is given changes (invocation-only settings are never taken from it)."""
    assigned: list[tuple[str, str, Any]] = [(where, *parse_assignment(item)) for where, item in sets]
    config_path = next((v for _, k, v in reversed(assigned) if k == "config"), flags.get("config"))
    from_file = flatten(load_config_file(str(config_path))) if config_path else {}
    layers = [(from_file, f"--config {config_path}"), (flags, "flags"), *(({k: v}, where) for where, k, v in assigned)]
    peek = {k.replace("-", "_"): v for layer, _ in layers for k, v in layer.items()}
    root, name = peek.get("run_root", _default("run_root")), peek.get("name")
    if isinstance(name, str) and isinstance(root, str):  # checked before the file system is asked about them
        check_file_name(name, "--name")
        check_path(root, "--run-root")
    run = RunLayout(Path(str(root), str(name)))
    if peek.get("auto_resume") and peek.get("name"):
        peek["resume"] = is_checkpoint(run.checkpoints.latest())
        layers.append(({"resume": peek["resume"]}, "--auto-resume"))
    values: dict[str, Any] = {}
    resuming = bool(peek.get("resume") and peek.get("name"))
    if resuming and run.config.is_file():
        values = {k: v for k, v in read_saved(run.config).items() if k not in INVOCATION_KEYS}
        _check_saved(values, {k.replace("-", "_") for layer, _ in layers for k in layer}, run.config)
    saved_parts = {name: dict(values.get(name, {})) for name in SETTINGS_PREFIXES.values()}
    try:
        for layer, where in layers:
            values = apply(values, layer, where, TrainConfig)
    except UnknownSetting as exc:
        raise _part_hint(exc, {**values, **peek}) from None
    if resuming:
        _reshare(values, saved_parts)
    empty = next((k for k in ("model", "dataset") if peek.get(k) == ""), None)
    if empty:
        raise ScorchError(f"--{empty}: expected a file, got ''")
    missing = [f"--{k}" for k in ("model", "dataset") if not values.get(k)]
    if missing and peek.get("resume") and not name:
        raise ScorchError("--resume needs --name: the run to continue is <run-root>/<name>")
    if missing and resuming:
        raise ScorchError(f"--resume: there is no run {run.path} (no {run.config.name} in it); check --run-root and --name, "
                          "or start the run without --resume")
    if missing:
        raise ScorchError(f"{missing[0]} is required (or '{missing[0][2:]}:' in --config)")
    given = {k.replace("-", "_") for layer, _ in layers[1:] for k in layer}  # flags and --set, not a config file
    if resuming and run.config.is_file():
        _moved(values, {k.replace("-", "_") for layer, _ in layers for k in layer}, run.path)
        saved_init = read_saved(run.config).get("init_from")
        if values.get("init_from") != saved_init:
            raise ScorchError(f"--init-from starts a new run from another run's weights; --resume continues {run.path} "
                              "from its own checkpoint: give one of them (a new --name with --init-from, or --resume "
                              "alone)")
    config = TrainConfig(**values)
    if "momentum" in given and config.optimizer != "sgd":
        raise ScorchError(f"--momentum: --optimizer {config.optimizer} has no momentum (its betas are its own), so it "
                          "would have no effect; use --optimizer sgd, or leave --momentum out")
    return config


def _reshare(values: dict[str, Any], saved: Mapping[str, dict[str, Any]]) -> None:
    """A resumed run given ``shared.NAME`` anew: the saved settings of each part that took NAME (as
    resolved, they hold it) take the new value, unless ``PART.NAME`` is given anew too, or the part
    had a value of its own (``PART.NAME`` beside the saved ``shared.NAME``)."""
    shared = values.get("shared_settings", {})
    for key, value in shared.items():
        before = saved["shared_settings"].get(key, _UNSET)
        if before == value:
            continue
        for name in ("model_settings", "socket_settings", "dataset_settings"):
            part = values.get(name, {})
            took = key in saved[name] and (before is _UNSET or saved[name][key] == before)
            if took and part.get(key) == saved[name][key]:
                values[name] = {**part, key: value}


_UNSET = object()


def _moved(values: dict[str, Any], given: set[str], run_dir: Path) -> None:
    """A resumed run that moved: its saved model and dataset files and a relative --dataset-path are
    found as :mod:`scorch.rundir.moved` finds them (unless given anew)."""
    from ..rundir import moved

    if values.get("model") and values.get("dataset"):
        values["model"], values["dataset"] = moved.user_files(run_dir, values["model"], values["dataset"], "--resume",
                                                              tuple(k for k in ("model", "dataset") if k in given))
    if "dataset_path" not in given:
        values["dataset_path"] = moved.dataset_path(run_dir, values.get("dataset_path"), "--resume")


def _check_saved(values: Mapping[str, Any], given: set[str], path: Path) -> None:
    """A saved setting out of its range, and given no new value, is the saved file's fault: say so."""
    for key, value in values.items():
        if key not in given:
            try:
                check_value(key, value)
            except ScorchError as exc:
                raise ScorchError(f"{path}: {exc} (as saved; give it anew to replace it)") from None


def _default(name: str) -> Any:
    return next(f.default for f in dataclasses.fields(TrainConfig) if f.name == name)
