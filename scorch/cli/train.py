"""``scorch-train``: the command line over :func:`scorch.train.train`."""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Sequence

from .. import _launch, _logging, distributed as dist
from ..config import AMP_MODES, BACKENDS, DEVICES, MONITOR_MODES, OPTIMIZERS, TrainConfig
from ..errors import ScorchError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise ScorchError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="scorch-train",
        description="Train MODEL_FILE's Network on DATASET_FILE's DataSet; distributed when started by "
        "mpirun, torchrun, horovodrun or srun (or with --nproc-per-node).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = TrainConfig.__dataclass_fields__
    a = p.add_argument
    g = p.add_argument_group("files")
    g.add_argument("--model", required=True, help="MODEL_FILE defining Network and Socket")
    g.add_argument("--dataset", required=True, help="DATASET_FILE defining DataSet (and optionally DataSetIndex)")
    g.add_argument("--dataset-path", default=None, help="passed to DataSetIndex(path), or to DataSet when there is no DataSetIndex")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=d["epochs"].default, help="epochs to train in total (a resume continues up to this)")
    g.add_argument("--batch-size", type=int, default=d["batch_size"].default, help="batch size per process")
    g.add_argument("--lr", type=float, default=d["lr"].default, help="learning rate")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d["optimizer"].default, help="used unless Socket.optimizer(params) is defined")
    g.add_argument("--weight-decay", type=float, default=d["weight_decay"].default, help="weight decay")
    g.add_argument("--momentum", type=float, default=d["momentum"].default, help="momentum (sgd)")
    g.add_argument("--seed", type=int, default=d["seed"].default, help="seed for weights, shuffling and every rank's RNG")
    g.add_argument("--workers", type=int, default=d["workers"].default, help="DataLoader worker processes per rank")
    g.add_argument("--accumulate", type=int, default=d["accumulate"].default, help="micro-batches per optimizer step (gradient accumulation)")
    g.add_argument("--clip-grad", type=float, default=None, help="clip the gradient norm of the trainable parameters to this")
    g.add_argument("--amp", choices=AMP_MODES, default=d["amp"].default, help="automatic mixed precision")
    g.add_argument("--monitor", default=None, help="metric for best.pt and early stopping, e.g. valid/accuracy (default valid/loss)")
    g.add_argument("--monitor-mode", choices=MONITOR_MODES, default=d["monitor_mode"].default, help="auto: min for losses/errors, max otherwise")
    g.add_argument("--patience", type=int, default=None, help="stop after this many epochs without improvement of --monitor")
    g = p.add_argument_group("run directory")
    g.add_argument("--run-root", default=d["run_root"].default, help="directory holding run directories")
    g.add_argument("--name", default=None, help="run name (default: a timestamp); the run lives in RUN_ROOT/NAME")
    g.add_argument("--resume", action="store_true", help="continue RUN_ROOT/NAME from checkpoints/last.pt")
    g.add_argument("--overwrite", action="store_true", help="replace an existing non-empty run directory")
    g = p.add_argument_group("distributed")
    g.add_argument("--backend", choices=BACKENDS, default=d["backend"].default,
                   help="auto: horovod when Horovod is importable and the job came from horovodrun, or from mpirun "
                   "with SCORCH_BACKEND=horovod; torch.distributed otherwise")
    g.add_argument("--device", choices=DEVICES, default=d["device"].default, help="auto: one GPU per local rank when CUDA is available")
    g.add_argument("--nproc-per-node", type=int, default=1, help="without a launcher: start this many local ranks (torch elastic)")
    g.add_argument("--nnodes", type=int, default=1, help="with --nproc-per-node: number of machines")
    g.add_argument("--node-rank", type=int, default=0, help="with --nproc-per-node: this machine's rank")
    g.add_argument("--master-addr", default=d["master_addr"].default, help="with --nproc-per-node: address of node 0")
    g.add_argument("--master-port", type=int, default=None, help="with --nproc-per-node: free port on node 0 (default: a free one on one node, 29500 on several)")
    g.add_argument("--dist-timeout", type=float, default=d["dist_timeout"].default, help="seconds a collective may wait for the other ranks")
    g = p.add_argument_group("output")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g.add_argument("--debug", action="store_true", help="debug logging and tracebacks on errors")
    del a
    return p


def parse_config(argv: Sequence[str] | None) -> TrainConfig:
    ns = build_parser().parse_args(argv)
    return TrainConfig(**vars(ns))


def _error_prefix() -> str:
    return "scorch-train" if dist.world_size() == 1 else f"scorch-train[rank {dist.rank()}]"


def main(argv: Sequence[str] | None = None) -> int:
    """Run scorch-train; returns the exit code (0 ok, 1 failure, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    launch = _launch.detect()
    _logging.setup(launch.rank, debug)
    code = _run(argv, launch, debug)
    # A failed rank of several skips the teardown: it could wait for a rank stuck in a collective.
    if code == 0 or dist.world_size() == 1:
        dist.shutdown()
    return code


def _run(argv: list[str], launch: _launch.LaunchInfo, debug: bool) -> int:
    try:
        config = parse_config(argv)
        if config.nproc_per_node > 1 and launch.launcher == "none":
            from .. import _elastic
            from ..trainer import default_name

            return _elastic.launch(config.replace(name=config.name or default_name()), argv)
        from ..trainer import train

        train(config)
        return 0
    except ScorchError as exc:
        if debug:
            traceback.print_exc()
        print(f"{_error_prefix()}: error: {exc}", file=sys.stderr)
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


def console_main() -> None:
    code = main()
    if code != 0 and dist.world_size() > 1:
        # Do not wait in MPI_Finalize or a process-group teardown for ranks that may be
        # stuck in a collective: leave now so the launcher ends the whole job.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console_main()
