"""What ``list`` and ``need`` report: counts, compute time, estimates."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._generator import DATASETS_FILE, GeneratorSpec, load_datasets
from ._moves import recover
from ._params import Params
from ._stats import TimeStats, time_stats
from ._store import UNASSIGNED, ParamSetDir, check_group_name, list_datasets, list_param_sets
from ._timing import per_sample_bound, split_samples, time_limit_minutes
from .errors import GenError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParamSetRow:
    """One line of ``scorch-gen list``."""

    dataset: str
    index: int
    param_id: str
    non_defaults: Mapping[str, Any] | None  # None: the dataset is gone from datasets.py
    counts: Mapping[str, int]
    stats: TimeStats


def _specs_if_any(directory: Path) -> dict[str, GeneratorSpec]:
    if not (directory / DATASETS_FILE).is_file():
        return {}
    return load_datasets(directory)


def non_defaults_of(spec: GeneratorSpec | None, values: Mapping[str, Any]) -> dict[str, Any] | None:
    """Values differing from the current defaults; None when there is no generator any more."""
    if spec is None:
        return None
    defaults = spec.params_cls.defaults()
    return {k: v for k, v in values.items() if k not in defaults or defaults[k] != v}


def list_rows(directory: Path) -> list[ParamSetRow]:
    """Every (dataset, parameter set) in the cache, datasets sorted, sets oldest first."""
    specs = _specs_if_any(directory)
    rows = []
    for dataset in list_datasets(directory):
        for index, ps in enumerate(list_param_sets(directory, dataset)):
            recover(ps)
            values = ps.read_params().get("values", {})
            rows.append(ParamSetRow(dataset, index, ps.param_id,
                                    non_defaults_of(specs.get(dataset), values),
                                    ps.counts(), time_stats(ps)))
    return rows


@dataclass(frozen=True)
class NeedReport:
    """How far a group is from N samples and what generating the rest costs."""

    dataset: str
    params: Params
    param_id: str
    group: str
    wanted: int
    in_group: int
    unassigned: int
    to_generate: int
    stats: TimeStats
    jobs: int

    @property
    def to_move(self) -> int:
        return min(self.unassigned, max(self.wanted - self.in_group, 0))

    @property
    def compute_seconds(self) -> float:
        """Expected compute time for the missing samples (mean per-sample time)."""
        return self.to_generate * self.stats.mean

    @property
    def compute_bound_seconds(self) -> float:
        """The same with mean + 3 sd per sample (what job limits budget for)."""
        return self.to_generate * per_sample_bound(self.stats)

    @property
    def samples_per_job(self) -> int:
        return max(split_samples(self.to_generate, self.jobs)) if self.to_generate else 0

    @property
    def job_minutes(self) -> int | None:
        if self.stats.samples == 0 or not self.to_generate:
            return None
        return time_limit_minutes(self.stats, self.samples_per_job)


def need(ps: ParamSetDir, spec: GeneratorSpec, params: Params, wanted: int, group: str,
         jobs: int) -> NeedReport:
    """How many more samples *group* needs to hold *wanted*, and their cost."""
    check_group_name(group)
    if wanted < 0:
        raise GenError(f"N={wanted}: expected a number of samples >= 0")
    if jobs < 1:
        raise GenError(f"--jobs {jobs}: expected a positive number of jobs")
    if ps.root.is_dir():
        recover(ps)
        in_group, unassigned, stats = ps.count(group), ps.count(UNASSIGNED), time_stats(ps)
    else:
        in_group, unassigned, stats = 0, 0, TimeStats.from_sums(0, 0.0, 0.0)
    to_generate = max(wanted - in_group - unassigned, 0)
    return NeedReport(spec.name, params, ps.param_id, group, wanted, in_group, unassigned,
                      to_generate, stats, min(jobs, to_generate) or 1)
