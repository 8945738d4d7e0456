"""Override parsing: literals only, never code; names and types checked (property-based)."""
import pytest
from hypothesis import given, settings, strategies as st

from scorch.config import TrainConfig
from scorch.contract import overrides
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
def test_unknown_names_are_refused_with_the_nearest_or_where_to_look(name):
    if name in TrainConfig.__dataclass_fields__:
        return
    with pytest.raises(ScorchError, match=r"unknown setting .*; (did you mean \w+\?|scorch-train --help lists every setting)"):
        overrides.apply({}, {name: 1}, "--set", TrainConfig)


@pytest.mark.parametrize("name, meant", [("batchsize", "batch_size"), ("learning_rate", "lr"), ("patiance", "patience"),
                                         ("num_workers", "workers"), ("warmup_step", "warmup_steps"), ("epoch", "epochs")])
def test_a_misspelt_setting_suggests_the_nearest_one(name, meant):
    with pytest.raises(ScorchError) as info:
        overrides.apply({}, {name: 1}, "--set", TrainConfig)
    assert str(info.value).endswith(f"unknown setting {name!r}; did you mean {meant}?")


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


# ---- a run's saved settings (config.json): one reader, one strictness -------------------------

@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    from scorch.cli.train import main as train
    from tests.helpers import base_args

    root = tmp_path_factory.mktemp("saved")
    assert train(base_args(root, "r", "--epochs", "1", "--batch-size", "16")) == 0
    return root / "r"


def readers(run, tmp_path):
    """Every command that reads a run's config.json: (name, call returning an exit code)."""
    import scorch
    from scorch.cli.report import main as report
    from scorch.cli.test import main as scorch_test
    from scorch.cli.train import main as train
    from scorch.experiments import sweep
    from tests.helpers import base_args

    def load_run():
        scorch.load_run(run)
        return 0

    def sweep_status():
        return 0 if sweep.status(run) == "finished" else 1

    return {"load_run": load_run, "scorch-test": lambda: scorch_test([str(run)]),
            "scorch-report": lambda: report([str(run), "--out", str(tmp_path / "r.png")]),
            "sweep status": sweep_status,
            "scorch-train --resume": lambda: train(base_args(run.parent, run.name, "--resume", "--epochs", "2"))}


@pytest.mark.parametrize("reader", ["load_run", "scorch-test", "scorch-report", "sweep status", "scorch-train --resume"])
def test_a_setting_of_another_scorch_version_is_left_out_with_one_warning_everywhere(reader, saved_run, tmp_path, capsys, caplog):
    import json
    import shutil

    run = tmp_path / "runs" / "r"
    shutil.copytree(saved_run, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "color": "blue", "model_settings": {}}))
    capsys.readouterr()
    assert readers(run, tmp_path)[reader]() == 0
    said = capsys.readouterr().err + caplog.text
    assert said.count("left out setting(s) this scorch does not know: color") == 1, said
    assert str(run / "config.json") in said


@pytest.mark.parametrize("damage, words", [("{", "not readable JSON"), ("[1]", "expected a JSON object of settings, found list"),
                                           ('{"epochs": "two"}', "epochs = 'two' is a str, expected int")])
def test_a_broken_config_json_is_one_line_naming_it_everywhere(damage, words, saved_run, tmp_path, capsys):
    import shutil

    from scorch.experiments import sweep

    run = tmp_path / "runs" / "r"
    shutil.copytree(saved_run, run)
    (run / "config.json").write_text(damage)
    with pytest.raises(ScorchError, match=words) as info:
        overrides.read_saved(run / "config.json")
    assert str(info.value).startswith(f"{run / 'config.json'}: ") and "\n" not in str(info.value)
    for name, call in readers(run, tmp_path).items():
        if name == "sweep status":
            assert sweep.status(run) == "new"  # a sweep runs (resumes) it, and scorch-train says what is wrong
            continue
        if name == "load_run":
            with pytest.raises(ScorchError, match=words) as info:
                call()
            assert str(run / "config.json") in str(info.value)
            continue
        capsys.readouterr()
        assert call() == 2, name
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("scorch-")]
        assert len(lines) == 1 and words in lines[0] and str(run / "config.json") in lines[0], (name, lines)
