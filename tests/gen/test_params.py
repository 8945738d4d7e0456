"""Parameter sets: defaults, coercion, validation, stable ids."""
from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, strategies as st

from scorch.gen import GenError, Params
from scorch.gen._params import param_id, parse_params_literal


class P(Params):
    left = -1.0
    n_points = 3
    name = "a"
    flag = False
    shape = (2, 3)


def test_defaults_and_overrides():
    p = P(left=0, name="b")
    assert (p.left, p.n_points, p.name, p.flag, p.shape) == (0.0, 3, "b", False, (2, 3))
    assert isinstance(p.left, float)  # an int given for a float default becomes a float
    assert p.non_defaults() == {"left": 0.0, "name": "b"}
    assert P().values() == {"left": -1.0, "n_points": 3, "name": "a", "flag": False, "shape": [2, 3]}


def test_unknown_name_lists_valid_ones():
    with pytest.raises(GenError, match=r"unknown parameter\(s\) lft .*valid: flag, left, n_points, name, shape"):
        P(lft=1)


@pytest.mark.parametrize("name, value, expected", [
    ("n_points", 2.5, "expected int"),
    ("flag", 1, "expected bool"),
    ("name", 3, "expected str"),
    ("left", "x", "expected float"),
    ("left", float("nan"), "not a finite number"),
])
def test_wrong_types_are_errors_naming_the_parameter(name, value, expected):
    with pytest.raises(GenError, match=f"parameter {name!r}.*{expected}|{expected}"):
        P(**{name: value})


def test_id_is_sha256_of_canonical_json():
    p = P(left=0.5)
    canonical = json.dumps(p.values(), sort_keys=True, separators=(",", ":"))
    assert p.param_id() == hashlib.sha256(canonical.encode()).hexdigest()[:12]
    # Pinned to the exact bytes hashed: a change orphans every existing cache.
    assert param_id({"b": 1, "a": [1.5, "x"]}) == hashlib.sha256(b'{"a":[1.5,"x"],"b":1}').hexdigest()[:12]


@given(left=st.integers(-10**6, 10**6), n=st.integers(-5, 5))
def test_id_ignores_int_vs_float_and_order(left, n):
    a = P(left=left, n_points=n)
    b = P(n_points=n, left=float(left))
    assert a.param_id() == b.param_id()
    assert a == b
    if left != -1:
        assert a.param_id() != P(n_points=n).param_id()


def test_params_are_immutable():
    with pytest.raises(AttributeError):
        P().left = 3


def test_reserved_names_rejected():
    class Bad(Params):
        values = 1
    with pytest.raises(GenError, match="reserved"):
        Bad.defaults()


@pytest.mark.parametrize("text, message", [
    ("{'left': 1", "not a Python literal dict"),
    ("[1, 2]", "not a dict with string keys"),
    ("{1: 2}", "not a dict with string keys"),
    ("{'a': os.system('x')}", "not a Python literal dict"),
])
def test_parse_params_literal_errors(text, message):
    with pytest.raises(GenError, match=message):
        parse_params_literal(text)


def test_parse_params_literal():
    assert parse_params_literal("{'left': 0, 'std_dev': 0.5}") == {"left": 0, "std_dev": 0.5}
    assert parse_params_literal("") == {}
