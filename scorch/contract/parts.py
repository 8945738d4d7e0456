"""The settings of every part of a run, resolved in one place.

    --set model.NAME=V     Network(**settings)                   (or the model file's CONFIG)
    --set socket.NAME=V    Socket(network, **settings)
    --set dataset.NAME=V   DataSetIndex(path, **settings); with an index, a name the DataSet's
                           constructor takes goes to DataSet(index, mode, **settings) (to both
                           when both take it); without an index DataSet(path, mode, **settings)
    --set shared.NAME=V    given once, to every part whose constructor names NAME (a context
                           length); a part's own ``PART.NAME`` wins over it

``DataSetIndex.model_settings()`` (optional) returns facts of the data for the Network
(``{"num_classes": 10, "vocab_size": 65}``): each name the Network takes is passed to it unless
``model.NAME`` or ``shared.NAME`` gives it (that one wins, with one warning when it differs). The
resolved settings of each part (defaults, hook values and what was given) are what config.json
records, so that ``--resume``, ``load_run``, ``scorch-test`` and sweeps build the same parts.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..config import TrainConfig
from ..errors import ScorchError
from . import nearest
from .userfiles import DatasetFile, ModelFile, call_user, declared_settings

log = logging.getLogger(__name__)

HOOK = "model_settings"  # DataSetIndex.model_settings(): facts of the data for the Network


def _named(declared: dict[str, Any] | None) -> set[str]:
    """The names a part's constructor names (a ``**kwargs`` part names none: shared settings go by name)."""
    return set(declared or {})


def _network_declared(model_file: ModelFile) -> dict[str, Any] | None:
    return declared_settings(model_file.module, model_file.network_cls, 0)


def _shared_for(declared: dict[str, Any] | None, config: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in config.shared_settings.items() if k in _named(declared)}


def check_shared(model_file: ModelFile, dataset_file: DatasetFile, config: TrainConfig) -> None:
    """Every ``shared.NAME`` must be named by at least one part's constructor."""
    names = (_named(_network_declared(model_file)) | _named(model_file.socket_declared())
             | _named(dataset_file.declared()))
    for key in config.shared_settings:
        if key not in names:
            raise ScorchError(f"--set shared.{key}: no part takes a setting {key!r} (the Network, Socket, DataSetIndex "
                              f"and DataSet of {model_file.path} and {dataset_file.path}); "
                              + nearest.hint(key, names, prefix="shared."))


def dataset(dataset_file: DatasetFile, config: TrainConfig) -> dict[str, Any]:
    """The dataset file's settings: declared defaults, ``shared.NAME`` it takes, ``dataset.NAME``."""
    given = {**_shared_for(dataset_file.declared(), config), **config.dataset_settings}
    return dataset_file.settings(given)


def socket(model_file: ModelFile, config: TrainConfig) -> dict[str, Any]:
    """The Socket's settings: declared defaults, ``shared.NAME`` it takes, ``socket.NAME``."""
    given = {**_shared_for(model_file.socket_declared(), config), **config.socket_settings}
    return model_file.socket_settings(given)


def suggested(dataset_file: DatasetFile, index: Any) -> dict[str, Any]:
    """``DataSetIndex.model_settings()``: {} without an index or without the hook."""
    hook = getattr(index, HOOK, None) if dataset_file.index_cls is not None else None
    if hook is None:
        return {}
    where = f"{dataset_file.path}: DataSetIndex.{HOOK}()"
    if not callable(hook):
        raise ScorchError(f"{where[:-2]} is a {type(hook).__name__}, expected a method returning a dict of the "
                          "Network's settings")
    value = call_user(where, hook)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
        raise ScorchError(f"{where} returned a {type(value).__name__}, expected a dict of setting name -> value "
                          "(e.g. {'num_classes': 10})")
    return dict(value)


def network(model_file: ModelFile, config: TrainConfig, facts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Network's settings: declared defaults < ``facts`` (the DataSetIndex's :func:`suggested`,
    those the Network takes) < ``shared.NAME`` < ``model.NAME``. A fact that a setting given
    overrides with another value is one warning."""
    declared = _network_declared(model_file)
    given = {**_shared_for(declared, config), **config.model_settings}
    taken = {k: v for k, v in (facts or {}).items() if declared is None or k in declared}
    for key, value in taken.items():
        if key in given and given[key] != value:
            source = "model" if key in config.model_settings else "shared"
            log.warning("%s.%s = %r overrides DataSetIndex.%s()'s %s = %r: the Network gets %r", source, key, given[key],
                        HOOK, key, value, given[key])
    return model_file.settings({**taken, **given})


def check(model_file: ModelFile, dataset_file: DatasetFile, config: TrainConfig) -> None:
    """Every part's settings name what its constructor takes, with the right types (before a job or
    a sweep is written): one ScorchError line, with the nearest valid name."""
    check_shared(model_file, dataset_file, config)
    network(model_file, config)
    socket(model_file, config)
    dataset(dataset_file, config)


def before_index(model_file: ModelFile, dataset_file: DatasetFile, config: TrainConfig) -> TrainConfig:
    """``config`` with the dataset's and the Socket's settings resolved (the index is built from the
    former); the Network's are checked, and resolved by :func:`after_index`."""
    check_shared(model_file, dataset_file, config)
    network(model_file, config)
    return config.replace(dataset_settings=dataset(dataset_file, config), socket_settings=socket(model_file, config))


def after_index(model_file: ModelFile, dataset_file: DatasetFile, config: TrainConfig, index: Any) -> TrainConfig:
    """``config`` with the Network's settings resolved, the DataSetIndex's facts among them."""
    return config.replace(model_settings=network(model_file, config, suggested(dataset_file, index)))
