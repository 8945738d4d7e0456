"""``scorch-gen``: generate dataset samples on SLURM or locally, list, move, plan.

    scorch-gen generate NAME -n 1000 --jobs 40 [--params "{'std_dev': 0.5}"] [--time 30] [--local]
    scorch-gen list
    scorch-gen move NAME N GROUP [--params ...]
    scorch-gen need NAME N --group train [--params ...] [--jobs 40]

Every subcommand takes ``--dir DIR`` (the directory holding ``datasets.py``,
default ``.``), ``--debug`` (tracebacks) and ``-v`` (log progress). Bad input
is one line on stderr and exit code 2; failed jobs exit 1 (see :mod:`scorch.errors`).
"""
from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..gen import (
    UNASSIGNED,
    GenerateRequest,
    GenError,
    NeedReport,
    ParamSetRow,
    check_group_name,
    format_duration,
    format_values,
    generate,
    list_rows,
    move,
    need,
    parse_params_literal,
    resolve,
)
from ._runner import Command, Parser

PROG = "scorch-gen"


@dataclass(frozen=True)
class Common:
    """Options every subcommand has."""

    directory: Path
    debug: bool = False
    verbose: int = 0


@dataclass(frozen=True)
class ListConfig:
    common: Common


@dataclass(frozen=True)
class _SamplesOfGroup:
    """NAME N GROUP, of ``move`` and ``need``."""

    common: Common
    dataset: str
    n: int
    group: str
    params: Mapping[str, Any] = field(default_factory=dict)
    least: ClassVar[int] = 1  # the smallest N that makes sense

    def __post_init__(self) -> None:
        if self.n < self.least:
            verb = type(self).__name__.removesuffix("Config").lower()
            raise GenError(f"{verb} N={self.n}: expected a number of samples >= {self.least}")
        check_group_name(self.group)


@dataclass(frozen=True)
class MoveConfig(_SamplesOfGroup):
    pass


@dataclass(frozen=True)
class NeedConfig(_SamplesOfGroup):
    jobs: int = 1
    least: ClassVar[int] = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.jobs < 1:
            raise GenError(f"--jobs {self.jobs}: expected a positive number of jobs")


@dataclass(frozen=True)
class GenerateConfig:
    common: Common
    request: GenerateRequest


Config = ListConfig | MoveConfig | NeedConfig | GenerateConfig


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--dir", default=".", metavar="DIR",
                        help="directory holding datasets.py; the cache is DIR/gen_cache (default: .)")
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    common.add_argument("-v", "--verbose", action="count", default=0,
                        help="log progress to stderr (-vv for debug)")
    params = Parser(add_help=False)
    params.add_argument("--params", default="{}", metavar="DICT",
                        help="non-default parameters as a Python literal dict, "
                             "e.g. \"{'left': 0, 'std_dev': 0.5}\" (default: the generator's own)")

    parser = Parser(prog=PROG, description="Generate dataset samples with SLURM job arrays or "
                     "local processes, cache them, assign them to groups.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=Parser)

    gen = sub.add_parser("generate", parents=[common, params], help="generate samples",
                         description="Split N samples over jobs (a SLURM job array, or local "
                         "processes with --local); each job saves a chunk every save_every samples.")
    gen.add_argument("dataset", metavar="NAME", help="a generator defined in datasets.py")
    gen.add_argument("-n", type=int, required=True, metavar="N", help="number of samples")
    gen.add_argument("--jobs", "-njobs", type=int, default=1, metavar="J",
                     help="number of jobs to split the samples over (default: 1)")
    gen.add_argument("--time", type=int, default=None, metavar="MINUTES",
                     help="time limit per job; default: (mean + 3 sd) of the recorded "
                          "per-sample time x samples per job, + 1 minute start-up")
    gen.add_argument("--local", action="store_true",
                     help="run the jobs as local processes instead of submitting to SLURM")
    gen.add_argument("--max-parallel", type=int, default=None, metavar="P",
                     help="with --local: processes at once, >= 1 (default: the number of CPUs)")
    gen.add_argument("--slurm-options", default="", metavar="OPTS",
                     help="extra sbatch options, joined with '=': --slurm-options='--partition=gpu --qos=long'")

    sub.add_parser("list", parents=[common], help="table of cached samples",
                   description="Per dataset and parameter set: samples per group and compute time.")

    mv = sub.add_parser("move", parents=[common, params], help="assign samples to a group",
                        description="Irreversibly assign N unassigned samples to GROUP.")
    mv.add_argument("dataset", metavar="NAME")
    mv.add_argument("n", type=int, metavar="N")
    mv.add_argument("group", metavar="GROUP", help="e.g. train, test")

    nd = sub.add_parser("need", parents=[common, params], help="how many more samples a group needs",
                        description="How many more samples GROUP needs to hold N, and the compute "
                        "and job time to generate them.")
    nd.add_argument("dataset", metavar="NAME")
    nd.add_argument("n", type=int, metavar="N")
    nd.add_argument("--group", required=True, help="the group that should hold N samples")
    nd.add_argument("--jobs", type=int, default=1, metavar="J",
                    help="jobs to plan the generation over (default: 1)")
    return parser


def parse_config(argv: Sequence[str] | None) -> Config:
    """argv -> one frozen config; nothing downstream sees the Namespace."""
    return config_from(build_parser().parse_args(argv))


def config_from(ns: argparse.Namespace) -> Config:
    common = Common(Path(ns.dir).resolve(), ns.debug, ns.verbose)
    if ns.command == "list":
        return ListConfig(common)
    values = parse_params_literal(ns.params)
    if ns.command == "move":
        return MoveConfig(common, ns.dataset, ns.n, ns.group, values)
    if ns.command == "need":
        return NeedConfig(common, ns.dataset, ns.n, ns.group, values, jobs=ns.jobs)
    request = GenerateRequest(directory=common.directory, dataset=ns.dataset, n=ns.n,
                              jobs=ns.jobs, params=values, time_minutes=ns.time, local=ns.local,
                              max_parallel=ns.max_parallel,
                              slurm_options=ns.slurm_options)
    return GenerateConfig(common, request)


# --- output -----------------------------------------------------------------

def format_table(rows: Sequence[ParamSetRow]) -> str:
    """The ``list`` table: one line per parameter set, one column per group."""
    if not rows:
        return "no samples yet; generate some with: scorch-gen generate NAME -n N --time MINUTES"
    groups = sorted({g for r in rows for g in r.counts if g != UNASSIGNED})
    header = ["dataset", "#", "id", "parameters", UNASSIGNED, *groups, "compute"]
    lines = [header]
    for r in rows:
        params = "(dataset not in datasets.py)" if r.non_defaults is None else format_values(r.non_defaults)
        lines.append([r.dataset, str(r.index), r.param_id, params,
                      *(str(r.counts.get(g, 0)) for g in [UNASSIGNED, *groups]),
                      format_duration(r.stats.total)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    numeric = set(range(4, len(header)))
    out = []
    for line in lines:
        cells = [c.rjust(w) if i in numeric else c.ljust(w)
                 for i, (c, w) in enumerate(zip(line, widths))]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _params_arg(values: Mapping[str, Any]) -> str:
    """`` --params "{'left': 0.0}"`` for a command line to copy (empty for defaults)."""
    if not values:
        return ""
    text = repr(dict(sorted(values.items())))
    # Double quotes read best around a dict repr; shlex.quote when they would not be safe.
    return f' --params "{text}"' if not set(text) & set('"$`\\!') else f" --params {shlex.quote(text)}"


def format_need(r: NeedReport, directory: Path | None = None) -> str:
    """The ``need`` answer: counts, what to move, what to generate and its cost; the commands it
    prints take ``--dir`` when ``directory`` is not the working directory."""
    label = f"{r.dataset} {format_values(r.params.non_defaults())} [{r.param_id}]"
    lines = [f"{label}: group {r.group!r} has {r.in_group} of {r.wanted}; "
             f"{r.unassigned} unassigned"]
    extra = _params_arg(r.params.non_defaults())
    if directory is not None and Path(directory).resolve() != Path.cwd().resolve():
        extra += f" --dir {shlex.quote(str(directory))}"
    if r.to_move:
        lines.append(f"move {r.to_move} unassigned: scorch-gen move {r.dataset} {r.to_move} "
                     f"{r.group}{extra}")
    if not r.to_generate:
        lines.append("need 0 more samples")
        return "\n".join(lines)
    lines.append(f"need {r.to_generate} more samples")
    if r.stats.samples == 0:
        lines.append("compute time: unknown (no recorded sample times yet; the first "
                     "generate needs --time MINUTES)")
        return "\n".join(lines)
    lines.append(f"estimated compute time: {format_duration(r.compute_seconds)} "
                 f"(mean {r.stats.mean:.4g} s/sample over {r.stats.samples} samples; "
                 f"{format_duration(r.compute_bound_seconds)} at mean + 3 sd)")
    lines.append(f"job time: {r.job_minutes} min per job with --jobs {r.jobs} "
                 f"({r.samples_per_job} samples per job)")
    lines.append(f"generate: scorch-gen generate {r.dataset} -n {r.to_generate} "
                 f"--jobs {r.jobs}{extra}")
    return "\n".join(lines)


# --- run ----------------------------------------------------------------------

def run(config: Config) -> int:
    """Carry out one parsed command; prints its result; returns the exit code."""
    if isinstance(config, ListConfig):
        print(format_table(list_rows(config.common.directory)))
        return 0
    if isinstance(config, NeedConfig):
        spec, params, ps = resolve(config.common.directory, config.dataset, config.params)
        print(format_need(need(ps, spec, params, config.n, config.group, config.jobs), config.common.directory))
        return 0
    if isinstance(config, MoveConfig):
        spec, params, ps = resolve(config.common.directory, config.dataset, config.params)
        if not ps.root.is_dir():
            raise GenError(f"no samples of {spec.name} {format_values(params.non_defaults())} "
                           f"[{ps.param_id}]; generate some first (see scorch-gen list)")
        result = move(ps, config.n, config.group)
        counts = ps.counts()
        print(f"moved {result.moved} samples of {spec.name} [{ps.param_id}] to {config.group!r}: "
              f"{counts.get(config.group, 0)} in {config.group!r}, {counts[UNASSIGNED]} unassigned")
        return 0
    outcome = generate(config.request)
    req = config.request
    label = f"{outcome.dataset} {format_values(outcome.params.non_defaults())} " \
            f"[{outcome.params.param_id()}]"
    per_job = f"{min(outcome.sizes)}-{max(outcome.sizes)}" if min(outcome.sizes) != max(outcome.sizes) \
        else str(outcome.sizes[0])
    if outcome.job_id is not None:
        print(f"submitted SLURM job array {outcome.job_id}: {len(outcome.sizes)} tasks x {per_job} "
              f"samples of {label}, time limit {outcome.time_minutes} min; logs in {outcome.log_dir}")
    else:
        print(f"generated {req.n} samples of {label} in {len(outcome.sizes)} local jobs "
              f"({per_job} each); now {outcome.counts.get(UNASSIGNED, 0)} unassigned")
    return 0


COMMAND = Command(PROG, build_parser, lambda ns: run(config_from(ns)))
main, console_main = COMMAND.main, COMMAND.console_main


if __name__ == "__main__":
    console_main()
