"""Override parsing: literals only, never code; names and types checked (property-based)."""
import pytest
from hypothesis import given, settings, strategies as st

from scorch import overrides
from scorch.config import TrainConfig
from scorch.errors import ScorchError

literals = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@given(literals)
def test_a_literal_round_trips(value):
    assert overrides.parse_value(repr(value)) == value


@given(st.text(max_size=40))
def test_any_text_parses_to_a_value_without_running_code(text):
    value = overrides.parse_value(text)
    assert value is None or isinstance(value, (bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset))


def test_code_is_kept_as_text_never_evaluated(tmp_path):
    marker = tmp_path / "ran"
    text = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    assert overrides.parse_value(text) == text
    assert not marker.exists()


@given(st.sampled_from(["lr", "batch_size", "batch-size", "epochs", "seed"]), st.integers(min_value=1, max_value=10**6))
def test_numeric_settings_accept_numbers(key, number):
    out = overrides.apply({}, {key: number}, "--set", TrainConfig)
    assert out[key.replace("-", "_")] == number


@settings(max_examples=50)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=15))
def test_unknown_names_are_refused_with_the_valid_ones(name):
    if name in TrainConfig.__dataclass_fields__:
        return
    with pytest.raises(ScorchError, match=r"unknown setting .* valid settings: .*batch_size"):
        overrides.apply({}, {name: 1}, "--set", TrainConfig)


@given(st.text(max_size=10) | st.lists(st.integers(), max_size=3) | st.booleans())
def test_wrong_types_are_refused(value):
    if isinstance(value, int):
        return
    with pytest.raises(ScorchError, match="expected int"):
        overrides.apply({}, {"epochs": value}, "--set", TrainConfig)


@given(st.dictionaries(st.sampled_from(["n_filters", "width", "depth"]), st.integers(), max_size=3))
def test_model_settings_nest_under_model(settings_):
    flat = {f"model.{k}": v for k, v in settings_.items()}
    assert overrides.apply({}, flat, "--set", TrainConfig).get("model_settings", {}) == settings_


@given(st.text(alphabet="abc=., 0123[]", min_size=1, max_size=20))
def test_assignments_split_at_the_first_equals_sign(item):
    if "=" not in item or not item.partition("=")[0].strip():
        with pytest.raises(ScorchError, match="KEY=VALUE"):
            overrides.parse_assignment(item)
    else:
        key, _ = overrides.parse_assignment(item)
        assert key == item.partition("=")[0].strip()
