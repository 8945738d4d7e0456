"""``scorch-sweep``: train every combination of a grid of settings, here or as one SLURM job array."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..config import TrainConfig
from ..errors import EXIT_PREEMPTED, ScorchError
from ..experiments import slurm, sweep
from . import train as train_cli
from ._runner import Command, Parser


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="scorch-sweep",
        description="Run scorch-train for every combination of the --grid values, each in its own run directory "
        "under RUN_ROOT/NAME (the sweep directory, with sweep.json). Every other flag (--model, --dataset, "
        "--epochs, --set ...) goes to every run. Running the same command again skips finished runs and "
        "resumes the others. One scorch-sweep at a time per sweep directory (RUN_ROOT/.NAME.lock); a killed one's "
        "runs stop with a checkpoint. At the end it prints and writes summary.csv, best run first.",
        allow_abbrev=False,  # flags it does not know go to scorch-train as they are
    )
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a setting and its values, repeatable: lr=0.1,0.01 or model.n_filters=8,16; values are "
                   "literals separated by commas outside brackets and quotes, e.g. "
                   "lr_schedule=\"[[3,0.1],[9,0.01]],cosine\"")
    p.add_argument("--parallel", type=int, metavar="K",
                   help="runs at a time (default: 1 here; with --slurm: as many as SLURM allows, else %%K)")
    p.add_argument("--name", help="sweep directory name (default: sweep- and a hash of the arguments, so the "
                   "same command finds the same sweep)")
    p.add_argument("--run-root", default=TrainConfig.__dataclass_fields__["run_root"].default,
                   help="directory holding the sweep directory (default: %(default)s)")
    p.add_argument("--summary", metavar="SWEEP_DIR", help="only print and write SWEEP_DIR/summary.csv")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks on errors")
    slurm.add_arguments(p, sweep=True)
    return p


def _print_summary(path: Path) -> None:
    target, header, rows = sweep.write_summary(path)
    print(sweep.format_summary(header, rows))
    print(f"scorch-sweep: wrote {target}")


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Flags scorch-sweep does not know go to every run's scorch-train, as they are (``ns.rest``)."""
    ns, rest = parser.parse_known_args(argv)
    ns.rest = rest
    return ns


def run(ns: argparse.Namespace) -> int:
    """0 all finished, 1 a run failed, 2 bad input, 3 stopped by a signal with runs left to resume."""
    rest = ns.rest
    if ns.summary:
        _print_summary(Path(ns.summary))
        return 0
    if ns.parallel is not None and ns.parallel < 1:
        raise ScorchError(f"--parallel: expected a whole number >= 1, got {ns.parallel}")
    given = vars(ns)
    layout = [d for d in slurm.DESTS if d.startswith("slurm_") and given.get(d) is not None]
    if layout and not ns.slurm:
        flag = "--" + layout[0][len("slurm_"):].replace("_", "-")
        raise ScorchError(f"{flag} describes a SLURM job: add --slurm, or leave it out to run here")
    options = slurm.options_from(given) if ns.slurm else None
    if not ns.grid:
        raise ScorchError("give at least one --grid KEY=V1,V2 (or --summary SWEEP_DIR)")
    name = ns.name if ns.name is not None else sweep.default_name(rest, ns.grid)
    path = sweep.sweep_dir(ns.run_root, name, ns.slurm)
    with sweep.locked(path):  # one scorch-sweep per sweep directory; a second is refused before it writes
        return _run_sweep(sweep.prepare(path, rest, ns.grid, train_cli.parse_config, for_slurm=ns.slurm),
                          ns, options)


def _run_sweep(plan: sweep.Sweep, ns: argparse.Namespace, options: slurm.SlurmOptions | None) -> int:
    print(f"scorch-sweep: {len(plan.runs)} runs in {plan.path}")
    if options is not None:
        job, todo = sweep.submit_array(plan, options, ns.parallel, ns.debug)
        if job is None:
            print("scorch-sweep: every run has finished")
            _print_summary(plan.path)
            return 0
        print(f"submitted SLURM job array {job} ({len(todo)} of {len(plan.runs)} runs): {plan.path / sweep.SWEEP_SCRIPT}")
        print(f"when it has ended: scorch-sweep --summary {shlex.quote(str(plan.path))}")
        return 0
    codes = sweep.run_local(plan, ns.parallel or 1, ns.debug)
    _print_summary(plan.path)
    failed = [n for n, c in codes.items() if c not in (0, EXIT_PREEMPTED)]
    if failed:
        print(f"scorch-sweep: {len(failed)} of {len(plan.runs)} runs failed: {', '.join(failed)} "
              f"(their output: {plan.path / 'logs'})", file=sys.stderr)
        return 1
    unfinished = [r.name for r in plan.runs if sweep.status(plan.path / r.name) != "finished"]
    if unfinished:
        print(f"scorch-sweep: stopped with {len(unfinished)} runs unfinished; run the same command again to "
              "resume them", file=sys.stderr)
        return EXIT_PREEMPTED
    return 0


COMMAND = Command("scorch-sweep", build_parser, run, parse=parse)
main, console_main = COMMAND.main, COMMAND.console_main


if __name__ == "__main__":
    console_main()
