"""``scorch-train``: the command line over :func:`scorch.train.train`."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import traceback
from pathlib import Path
from typing import Sequence

from .. import _logging, distributed as dist, launch, overrides, slurm
from ..config import AMP_MODES, BACKENDS, DEVICES, INVOCATION_KEYS, MONITOR_MODES, NAN_POLICIES, OPTIMIZERS, TrainConfig
from ..errors import DistributedError, Preempted, ScorchError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise ScorchError(message)


def build_parser() -> argparse.ArgumentParser:
    """Every flag defaults to SUPPRESS, so the namespace holds only what was given (a layer of
    its own between --config and --set); the real defaults live in TrainConfig."""
    p = _Parser(
        prog="scorch-train",
        description="Train MODEL_FILE's Network on DATASET_FILE's DataSet; distributed when started by "
        "mpirun, torchrun, horovodrun or srun (or with --nproc-per-node). Settings, lowest precedence "
        "first: defaults, --config FILE, flags, --set KEY=VALUE.",
        argument_default=argparse.SUPPRESS,
    )
    fields = TrainConfig.__dataclass_fields__

    def add(group: argparse._ArgumentGroup, flag: str, help: str, **kw: object) -> None:
        name = flag[2:].replace("-", "_")
        if name in fields and "action" not in kw:
            default = fields[name].default
            help = f"{help} (default: {default})" if default is not None else help
        group.add_argument(flag, help=help, **kw)  # type: ignore[arg-type]

    g = p.add_argument_group("files")
    add(g, "--model", "MODEL_FILE defining Network and Socket")
    add(g, "--dataset", "DATASET_FILE defining DataSet (and optionally DataSetIndex)")
    add(g, "--dataset-path", "passed to DataSetIndex(path), or to DataSet when there is no DataSetIndex")
    g = p.add_argument_group("settings")
    add(g, "--config", "YAML, JSON or TOML file of settings (any key below, and model:/dataset: sections)")
    add(g, "--set", "KEY=VALUE override, repeatable, parsed as a literal: e.g. lr=0.01, model.n_filters=16, "
        "lr_schedule=\"[[3, 0.1], [100, 0.01]]\" (LR until EPOCH), lr_schedule=cosine, warmup_epochs=2",
        action="append", dest="set", metavar="KEY=VALUE")
    g = p.add_argument_group("training")
    add(g, "--epochs", "epochs to train in total (a resume continues up to this)", type=int)
    add(g, "--batch-size", "batch size per process", type=int)
    add(g, "--lr", "learning rate", type=float)
    add(g, "--optimizer", "used unless Socket.optimizer(params) is defined", choices=OPTIMIZERS)
    add(g, "--weight-decay", "weight decay", type=float)
    add(g, "--momentum", "momentum (sgd)", type=float)
    add(g, "--seed", "seed for weights, shuffling and every rank's RNG", type=int)
    add(g, "--workers", "DataLoader worker processes per rank", type=int)
    add(g, "--accumulate", "micro-batches per optimizer step (gradient accumulation)", type=int)
    add(g, "--clip-grad", "clip the gradient norm of the trainable parameters to this", type=float)
    add(g, "--amp", "automatic mixed precision", choices=AMP_MODES)
    add(g, "--monitor", "metric for best.pt and early stopping, e.g. valid/accuracy (default: valid/loss)")
    add(g, "--monitor-mode", "auto: min for losses/errors, max otherwise", choices=MONITOR_MODES)
    add(g, "--patience", "stop after this many epochs without improvement of --monitor", type=int)
    add(g, "--nan-policy", "on a NaN/inf loss: stop (naming epoch and step), or skip that optimizer step and "
        "count it in history.csv", choices=NAN_POLICIES)
    g = p.add_argument_group("run directory")
    add(g, "--run-root", "directory holding run directories")
    add(g, "--name", "run name (default: a timestamp); the run lives in RUN_ROOT/NAME")
    add(g, "--resume", "continue RUN_ROOT/NAME from checkpoints/last.pt, with its saved settings "
        "unless overridden", action="store_true")
    add(g, "--auto-resume", "resume RUN_ROOT/NAME when it has checkpoints/last.pt, else start it (for jobs "
        "that are requeued)", action="store_true")
    add(g, "--overwrite", "replace an existing non-empty run directory", action="store_true")
    add(g, "--keep-checkpoints", "keep this many newest checkpoints (a resume falls back to the newest good one)", type=int)
    g = p.add_argument_group("distributed")
    add(g, "--backend", "auto: horovod when Horovod is importable and the job came from horovodrun, or from "
        "mpirun with SCORCH_BACKEND=horovod; torch.distributed otherwise", choices=BACKENDS)
    add(g, "--device", "auto: one GPU per local rank when CUDA is available", choices=DEVICES)
    add(g, "--nproc-per-node", "without a launcher: start this many ranks on this node (scorch's own launch)", type=int)
    add(g, "--nnodes", "without a launcher: machines in the job; start scorch-train on each, with its --node-rank "
        "(world size: nnodes x nproc-per-node)", type=int)
    add(g, "--node-rank", "with --nnodes: this machine's rank, 0 .. nnodes-1 (node 0 hosts the rendezvous)", type=int)
    add(g, "--master-addr", "with --nnodes: node 0's address as the other nodes reach it")
    add(g, "--master-port", "with --nnodes: a port open on node 0 (default: a free one on one node, "
        "29500 on several)", type=int)
    add(g, "--join-timeout", "seconds to wait for every node (or rank) to join before ending with the list of "
        "those missing", type=float)
    add(g, "--max-restarts", "with scorch's own launch: when a rank fails, restart every rank from the last "
        "checkpoint up to this many times", type=int)
    add(g, "--dist-timeout", "seconds a collective may wait for the other ranks", type=float)
    g = p.add_argument_group("output")
    add(g, "--no-progress", "no progress bar", action="store_false", dest="progress")
    add(g, "--debug", "debug logging and tracebacks on errors", action="store_true")
    slurm.add_arguments(p)
    return p


def parse_config(argv: Sequence[str] | None) -> TrainConfig:
    """Defaults < --config file < flags < --set; on --resume the run's saved config.json is the base."""
    given = vars(build_parser().parse_args(argv))
    for dest in slurm.DESTS:  # the job's layout, not the run's settings: see _run
        given.pop(dest, None)
    sets = dict(overrides.parse_assignment(item) for item in given.pop("set", []))
    config_path = given.get("config") or sets.get("config")
    from_file = overrides.flatten(overrides.load_config_file(config_path)) if config_path else {}
    layers = [(from_file, f"--config {config_path}"), (given, "flags"), (sets, "--set")]
    peek = {k.replace("-", "_"): v for layer, _ in layers for k, v in layer.items()}
    values: dict[str, object] = {}
    run_path = Path(str(peek.get("run_root", TrainConfig.__dataclass_fields__["run_root"].default)), str(peek.get("name")))
    if peek.get("auto_resume") and peek.get("name"):
        peek["resume"] = (run_path / "checkpoints" / "last.pt").is_file()
        layers.append(({"resume": peek["resume"]}, "--auto-resume"))
    if peek.get("resume") and peek.get("name"):
        saved = run_path / "config.json"
        if saved.is_file():
            base = {k: v for k, v in json.loads(saved.read_text()).items() if k not in INVOCATION_KEYS}
            values = overrides.apply(values, overrides.flatten(base), str(saved), TrainConfig)
    for layer, where in layers:
        values = overrides.apply(values, layer, where, TrainConfig)
    for required in ("model", "dataset"):
        if not values.get(required):
            raise ScorchError(f"--{required} is required (or '{required}:' in --config)")
    return TrainConfig(**values)  # type: ignore[arg-type]


def _error_prefix() -> str:
    return "scorch-train" if dist.world_size() == 1 else f"scorch-train[rank {dist.rank()}]"


def main(argv: Sequence[str] | None = None) -> int:
    """Run scorch-train; returns the exit code (0 ok, 1 failure, 2 bad input). The process goes
    on afterwards (API, tests): the process group is torn down after a success."""
    code = _main(argv)
    # A failed rank of several skips the teardown: it could wait for a rank stuck in a collective.
    if code == 0 or dist.world_size() == 1:
        dist.shutdown()
    return code


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    environment = launch.detect()
    with _logging.configured(environment.rank, debug):
        return _run(argv, environment, debug)


def _run(argv: list[str], environment: launch.LaunchEnvironment, debug: bool) -> int:
    try:
        config = parse_config(argv)
        given = vars(build_parser().parse_args(argv))
        if given.get("slurm") or given.get("submit"):
            return _slurm_job(config, slurm.options_from(given), bool(given.get("submit")))
        from ..launch import agent

        agent.check_no_launcher(environment, config, given)
        if environment.name == "none" and agent.wanted(config):
            return agent.launch(config, argv)
        from ..trainer import train

        train(config)
        return 0
    except (ScorchError, DistributedError) as exc:  # bad input; a job that could not form or lost a node
        if debug:
            traceback.print_exc()
        print(f"{_error_prefix()}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Preempted as exc:
        print(f"{_error_prefix()}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{_error_prefix()}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a failure inside a rank: name it, end the job
        if debug:
            traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"{_error_prefix()}: failed: {type(exc).__name__}: {first} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def _slurm_job(config: TrainConfig, options: slurm.SlurmOptions, submit: bool) -> int:
    """--slurm: write <run>/job.sbatch and job_config.json; --submit: also sbatch it."""
    from ..trainer import default_name

    script = slurm.write_job(config, options, config.name or default_name())
    if not submit:
        print(f"wrote {script}; submit it with: sbatch {shlex.quote(str(script))}")
        return 0
    job_id = slurm.submit(script)
    print(f"submitted SLURM job {job_id}: {script.parent} (log: {script.parent / f'slurm-{job_id}.out'})")
    return 0


def console_main() -> None:
    code = _main(None)
    if dist.world_size() == 1:
        dist.shutdown()
        sys.exit(code)
    # Several ranks: after a success every rank waits for the others, then all leave without
    # tearing the process group down (see dist.exit_process); after a failure leave at once so
    # the launcher ends the whole job.
    if code == 0:
        dist.leave()
    dist.exit_process(code)


if __name__ == "__main__":
    console_main()
