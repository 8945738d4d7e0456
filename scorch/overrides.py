"""Config files and ``--set KEY=VALUE`` overrides, parsed as literals (never evaluated as code).

Precedence, lowest first: TrainConfig defaults < ``--config`` file < command-line flags < ``--set``.
Keys are TrainConfig fields (``batch_size`` or ``batch-size``), or ``model.NAME`` /
``dataset.NAME`` for the settings the model and dataset files declare.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import types
import typing
from typing import Any, Mapping

from .errors import ScorchError

SETTINGS_PREFIXES = {"model": "model_settings", "dataset": "dataset_settings"}


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


def load_config_file(path: str) -> dict[str, Any]:
    """Read YAML, JSON or TOML (by extension) into a flat-or-nested dict."""
    if not os.path.isfile(path):
        raise ScorchError(f"--config: file not found: {path!r}")
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if ext == ".json":
            data = json.loads(raw)
        elif ext == ".toml":
            import tomllib

            data = tomllib.loads(raw.decode())
        elif ext in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(raw)
        else:
            raise ScorchError(f"--config {path}: unknown extension {ext!r}, expected .yaml, .yml, .json or .toml")
    except ScorchError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ScorchError(f"--config {path}: cannot parse it as {ext[1:].upper()}: {first}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ScorchError(f"--config {path}: expected a mapping of settings at the top level, got {type(data).__name__}")
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


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is Any:
        return True
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, dict):
        return isinstance(value, origin)
    return isinstance(value, annotation)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


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
            valid = ", ".join(sorted(fields | {"model.NAME", "dataset.NAME"}))
            raise ScorchError(f"{where}: unknown setting {key!r}; valid settings: {valid}")
        if isinstance(value, float) and value.is_integer() and hints[norm] is int:
            value = int(value)
        if not _type_ok(value, hints[norm]):
            raise ScorchError(f"{where}: {key} = {value!r} is a {type(value).__name__}, expected {_type_name(hints[norm])}")
        out[norm] = value
    return out
