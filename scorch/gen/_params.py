"""Parameter sets: defaults declared as class attributes, canonical values, stable ids.

A parameter set is identified by ``param_id``: the first 12 hex digits of the
SHA-256 of its canonical JSON (all values, defaults included, keys sorted,
no whitespace). Values are coerced to the type of their default (an ``int``
given for a ``float`` default becomes a float), so ``{'left': 0}`` and
``{'left': 0.0}`` name the same set when ``left`` defaults to a float.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from .errors import GenError

_SCALARS = (bool, int, float, str, type(None))


def _canonical_value(value: Any, where: str) -> Any:
    """JSON-able canonical form of a parameter value (tuples become lists)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise GenError(f"{where}: {value!r} is not a finite number")
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return [_canonical_value(v, where) for v in value]
    raise GenError(f"{where}: {value!r} has type {type(value).__name__}; "
                   "parameters must be bool, int, float, str, None or lists of them")


def _coerce(name: str, value: Any, default: Any, owner: str) -> Any:
    """*value* converted to the type of *default*, or a GenError naming the parameter."""
    where = f"parameter {name!r} of {owner}"
    if default is None or value is None:
        return _canonical_value(value, where)
    if isinstance(default, bool) or isinstance(value, bool):
        if type(value) is not type(default):
            raise GenError(f"{where}: got {value!r}, expected {type(default).__name__} "
                           f"like the default {default!r}")
        return value
    if isinstance(default, float) and isinstance(value, int):
        return _canonical_value(float(value), where)
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return _canonical_value(value, where)
    if type(value) is not type(default):
        raise GenError(f"{where}: got {value!r} ({type(value).__name__}), expected "
                       f"{type(default).__name__} like the default {default!r}")
    return _canonical_value(value, where)


class Params:
    """Base class for a generator's parameters.

    Subclass it and declare each parameter as a class attribute holding its
    default::

        class NoisySineParams(Params):
            left = -1.0     # leftmost x
            std_dev = 0.1   # noise

    ``NoisySineParams(std_dev=0.5)`` then has ``.left == -1.0`` and
    ``.std_dev == 0.5``; unknown names are an error listing the valid ones.
    """

    _values: dict[str, Any]
    _reserved: ClassVar[frozenset[str]] = frozenset({"defaults", "values", "non_defaults",
                                                     "param_id", "canonical_json"})

    def __init__(self, **values: Any) -> None:
        defaults = self.defaults()
        unknown = sorted(set(values) - set(defaults))
        if unknown:
            raise GenError(f"unknown parameter(s) {', '.join(unknown)} for "
                           f"{type(self).__name__}; valid: {', '.join(sorted(defaults)) or '(none)'}")
        resolved = {}
        for name, default in defaults.items():
            value = values.get(name, default)
            resolved[name] = _coerce(name, value, default, type(self).__name__)
        object.__setattr__(self, "_values", resolved)
        for name, value in resolved.items():  # instance attributes shadow the class defaults
            object.__setattr__(self, name, _frozen(value))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; build a new one")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Parameter names and canonical defaults, from the class attributes (MRO order)."""
        found: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if klass is object or klass is Params:
                continue
            for name, value in vars(klass).items():
                if name.startswith("_") or callable(value) or isinstance(
                        value, (classmethod, staticmethod, property)):
                    continue
                if name in cls._reserved:
                    raise GenError(f"{cls.__name__}.{name}: the name is reserved by "
                                   "scorch.gen.Params; rename the parameter")
                found[name] = _canonical_value(value, f"default of {cls.__name__}.{name}")
        return found

    def values(self) -> dict[str, Any]:
        """All parameter values, defaults included (a copy)."""
        return json.loads(self.canonical_json())

    def non_defaults(self) -> dict[str, Any]:
        """The values that differ from the class defaults."""
        defaults = self.defaults()
        return {k: v for k, v in self._values.items() if v != defaults[k]}

    def canonical_json(self) -> str:
        """The values as JSON with sorted keys and no whitespace: the hash input."""
        return canonical_json(self._values)

    def param_id(self) -> str:
        """Stable short id of this parameter set."""
        return param_id(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and type(other) is type(self) and other._values == self._values

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.canonical_json()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"{type(self).__name__}({args})"


def _frozen(value: Any) -> Any:
    """Lists as tuples, so a Params instance cannot be changed through its values."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def canonical_json(values: Mapping[str, Any]) -> str:
    """Canonical JSON of a parameter mapping (sorted keys, compact, exact floats)."""
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":"), allow_nan=False)


def param_id(values: Mapping[str, Any]) -> str:
    """First 12 hex digits of the SHA-256 of the canonical JSON of *values*."""
    return hashlib.sha256(canonical_json(values).encode()).hexdigest()[:12]


def parse_params_literal(text: str, where: str = "--params") -> dict[str, Any]:
    """Parse ``"{'left': 0, 'std_dev': 0.5}"`` as a Python literal dict with str keys."""
    try:
        value = ast.literal_eval(text.strip() or "{}")
    except (ValueError, SyntaxError) as exc:
        raise GenError(f"{where}: {text!r} is not a Python literal dict "
                       f"({type(exc).__name__}: {exc}); expected e.g. \"{{'std_dev': 0.5}}\"") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise GenError(f"{where}: {text!r} is not a dict with string keys; "
                       "expected e.g. \"{'std_dev': 0.5}\"")
    return value


def format_values(values: Mapping[str, Any]) -> str:
    """``left=0, std_dev=0.5`` (or ``(defaults)`` when empty), for tables and logs."""
    if not values:
        return "(defaults)"
    return ", ".join(f"{k}={v!r}" for k, v in sorted(values.items()))
