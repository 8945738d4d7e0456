"""``scorch-train``: the command line over :func:`scorch.training.trainer.train`."""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from .. import launch
from ..config import GROUPS, TrainConfig, hints, settings
from ..contract import overrides
from ..errors import EXIT_PREEMPTED, ScorchError, on_every_rank
from ..experiments import slurm
from ..launch import torchrun
from ..rundir.directory import default_name
from ..rundir.lock import RunLock
from ._runner import Command, Parser

SET_HELP = ("KEY=VALUE override, repeatable, parsed as a literal: e.g. lr=0.01, model.n_filters=16, "
            "lr_schedule=\"[[3, 0.1], [100, 0.01]]\" (LR until EPOCH), lr_schedule=cosine, warmup_epochs=2; "
            "--KEY=VALUE is the same for a KEY without a flag of its own, e.g. --model.n_filters=16")


def build_parser() -> argparse.ArgumentParser:
    """The flags come from TrainConfig's fields (their :class:`~scorch.config.Setting`). Every flag
    defaults to SUPPRESS, so the namespace holds only what was given (a layer of its own between
    --config and --set); the real defaults live in TrainConfig."""
    p = Parser(
        prog="scorch-train",
        description="Train MODEL_FILE's Network on DATASET_FILE's DataSet; distributed when started by "
        "mpirun, torchrun, horovodrun or srun (or with --nproc-per-node). Settings, lowest precedence "
        "first: defaults, --config FILE, flags, --set KEY=VALUE.",
        argument_default=argparse.SUPPRESS,
    )
    groups = {title: p.add_argument_group(title) for title in GROUPS}
    groups["settings"].add_argument("--set", action="append", dest="set", metavar="KEY=VALUE", help=SET_HELP)
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name, s in settings().items():
        if s.help is None:
            continue
        kinds = (hints()[name], *getattr(hints()[name], "__args__", ()))
        kind = str if str in kinds else next((t for t in (bool, int, float) if t in kinds), str)  # int | str: a cadence
        shown = s.default_text or (defaults[name] if defaults[name] not in (None, dataclasses.MISSING) else None)
        text = f"{s.help} (default: {shown})" if shown is not None and kind is not bool else s.help
        kw: dict[str, Any] = {"dest": name, "help": text}
        if kind is bool:
            kw["action"] = "store_false" if defaults[name] else "store_true"
        else:
            kw.update(type=kind, choices=s.choices or None)
        groups[s.group].add_argument(s.flag or "--" + name.replace("_", "-"), **kw)
    slurm.add_arguments(p)
    return p


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; an unknown ``--KEY=VALUE`` is ``--set KEY=VALUE`` (``ns.set``: (as written, item))."""
    _, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if not (a.startswith("--") and "=" in a)]
    if unknown:
        hint = "; a setting without a flag of its own takes --KEY=VALUE" if unknown[0].startswith("--") else ""
        parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    shorthand = set(extra)
    ns = parser.parse_args([x for a in argv for x in (["--set", a[2:]] if a in shorthand else [a])])
    ns.set = [(f"--{item.partition('=')[0]}" if f"--{item}" in shorthand else "--set", item) for item in getattr(ns, "set", [])]
    ns.argv = argv
    return ns


def config_from(ns: argparse.Namespace) -> TrainConfig:
    """Defaults < --config file < flags < --set; on --resume the run's saved config.json is the base."""
    given = {k: v for k, v in vars(ns).items() if k not in ("set", "argv", *slurm.DESTS)}  # the job's layout: see run
    return overrides.resolve(given, ns.set)


def parse_config(argv: Sequence[str] | None) -> TrainConfig:
    """The TrainConfig of a scorch-train command line (for scorch-sweep and tests)."""
    return config_from(parse(build_parser(), list(sys.argv[1:] if argv is None else argv)))


def _dist() -> ModuleType:
    """scorch.distributed, imported when first needed: it imports torch, which --help does without."""
    from .. import distributed

    return distributed


def run(ns: argparse.Namespace) -> int:
    from ..launch import agent  # imports torch

    given = vars(ns)
    environment = launch.detect()
    try:  # every rank of a job reads the same command line and files here
        config = config_from(ns)
        if not (given.get("slurm") or given.get("submit")):
            agent.check_no_launcher(environment, config, given)
    except ScorchError as exc:
        on_every_rank(exc)
        raise
    if given.get("slurm") or given.get("submit"):
        _load_files(config)
        return _slurm_job(config, slurm.options_from(given), bool(given.get("submit")))
    if environment.name == "none" and agent.wanted(config):
        _require_files(config)
        return agent.launch(config, ns.argv)
    from ..training.trainer import train  # the whole training stack: not for --help, a --slurm job or the launch agent

    train(config)
    return 0


def _require_files(config: TrainConfig) -> None:
    """Before handing the files to a job or to ranks that load them: they must be there."""
    for flag, path in (("--model", config.model), ("--dataset", config.dataset)):
        if not os.path.isfile(path):
            found = "is a directory" if os.path.isdir(path) else "file not found"
            raise ScorchError(f"{flag}: {found}: {path!r} (expected a Python file)")


def _load_files(config: TrainConfig) -> None:
    """Before a job is written (and --overwrite replaces a run with it): the files import, define
    their classes and take the settings given, as a sweep checks them."""
    from ..contract import parts
    from ..contract.userfiles import load_dataset_file, load_model_file

    parts.check(load_model_file(config.model), load_dataset_file(config.dataset), config)


def _slurm_job(config: TrainConfig, options: slurm.SlurmOptions, submit: bool) -> int:
    """--slurm: write <run>/job.sbatch and job_config.json; --submit: also sbatch it. Under the run's
    lock (a scorch-train on that run refuses it, one line); with --overwrite the old run is deleted
    only once the job is written (and submitted), and put back when that fails."""

    name = config.name or default_name()
    lock = RunLock(Path(os.path.abspath(config.run_root)) / name, config.break_lock)
    lock.acquire()
    try:
        script = slurm.write_job(config, options, name)
        try:
            job_id = slurm.submit_script(script) if submit else None
        except BaseException:
            slurm.put_back(script.parent, config.overwrite)
            raise
        slurm.replaced_by_job(script.parent)
    finally:
        lock.abandon()
    if job_id is None:
        print(f"wrote {script}; submit it with: sbatch {shlex.quote(str(script))}")
    else:
        print(f"submitted SLURM job {job_id}: {script.parent} (log: {script.parent / f'slurm-{job_id}.out'})")
    return 0


def _error_prefix() -> str:
    dist = _dist()
    return "scorch-train" if dist.world_size() == 1 else f"scorch-train[rank {dist.rank()}]"


COMMAND = Command("scorch-train", build_parser, run, parse=parse, rank=lambda: launch.detect().rank, prefix=_error_prefix,
                  shown=lambda exc: _dist().shown_error(exc))
# A rank that leaves quietly (another prints the job's error) first gives that rank time to print it,
# before the launcher, seeing this rank's exit, ends the job: ranks that had not met yet compare no notes,
# and rank 0 may reach the same error a moment later; after the first failure the line follows at once.
QUIET_BEFORE_MEETING_S = 10.0
QUIET_AFTER_FAILURE_S = 1.0
# A rank other than 0 that failed first gives rank 0 this long to undo what it started (an --overwrite)
# before its exit makes the launcher end the job.
RELEASE_GRACE_S = 0.5


def main(argv: Sequence[str] | None = None) -> int:
    """Run scorch-train; returns the exit code (0 ok, 1 failure, 2 bad input, 3 stopped). The process goes
    on afterwards (API, tests): the process group is torn down after a success."""
    code = COMMAND.main(argv)
    dist = _dist()
    # A failed rank of several skips the teardown: it could wait for a rank stuck in a collective.
    if code == 0 or dist.world_size() == 1:
        dist.shutdown()
    return code


def console_main() -> None:
    ending = COMMAND.end(None)  # --help ends here (SystemExit), before torch is imported
    dist = _dist()
    if ending.code == EXIT_PREEMPTED:
        torchrun.note("stopped")  # for scorch-torchrun's exit code
    quiet = ending.error is not None and not ending.shown
    if dist.world_size() == 1:
        dist.shutdown()
        if quiet and launch.detect().world_size > 1:
            time.sleep(QUIET_BEFORE_MEETING_S)  # rank 0 prints the error of the command line every rank has
        dist.exit_process(ending.code, clean=True)
    # Several ranks: after a success, an agreed stop or an error every rank raised alike, every rank
    # waits for the others (so the one that prints it has printed), then all leave without tearing the
    # process group down (see dist.exit_process); after a failure of one rank leave soon, so that the
    # launcher ends the whole job.
    together = ending.code in (0, EXIT_PREEMPTED) or ending.agreed
    if together:
        dist.leave()
    elif quiet:
        time.sleep(QUIET_AFTER_FAILURE_S)
    elif ending.error is not None and dist.rank() != 0:
        dist.release_peers()  # rank 0 learns it now and can put an --overwrite'd run back
        time.sleep(RELEASE_GRACE_S)
    dist.exit_process(ending.code, clean=together)


if __name__ == "__main__":
    console_main()
