"""``scorch-test RUN_DIR``: evaluate a run's checkpoint on its test (or valid) split, launched like
scorch-train (one process, mpirun, torchrun, srun); see :mod:`scorch.evaluate.eval_run`."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from .. import launch
from ..config import BACKENDS, DEVICES
from ..evaluate import SPLITS
from ..rundir.layout import BEST, CHECKPOINTS, CONFIG, LAST, RunLayout
from ._runner import Command, Parser

_SHOWN = RunLayout("RUN_DIR")  # the run directory's names, as --help shows them


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="scorch-test",
        description="Evaluate a checkpoint of RUN_DIR on a split with exact distributed metrics (Socket.metrics as "
        "means over every sample once, Socket.split_metrics on the whole split), rebuilding Network, Socket and "
        f"DataSet from the run's copies of its files and its {CONFIG}; print the metrics and write "
        f"{_SHOWN.eval_file('SPLIT', 'CHECKPOINT')}. Distributed when started by mpirun, torchrun or srun.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of scorch-train (RUN_ROOT/NAME)")
    p.add_argument("--checkpoint", default="best", help=f"best, last, or a checkpoint file (best: {BEST}, or {LAST} when "
                   f"no epoch was ever the best; a file: as given, else in RUN_DIR or RUN_DIR/{CHECKPOINTS})")
    p.add_argument("--split", default="test", choices=SPLITS, help="the DataSet mode to evaluate")
    p.add_argument("--predictions", action="store_true",
                   help=f"also write {_SHOWN.predictions_file('SPLIT', 'CHECKPOINT')}: every output of the Network, one "
                   "row per sample in dataset order, and their index")
    p.add_argument("--raw", action="store_true", help="evaluate the raw weights of a checkpoint of an --ema run "
                   f"(default: its moving average; written as {_SHOWN.eval_file('SPLIT', 'CHECKPOINT-raw')})")
    p.add_argument("--dataset-path", help="passed to DataSetIndex(path) instead of the run's --dataset-path")
    p.add_argument("--batch-size", type=int, help="batch size per process (default: the run's)")
    p.add_argument("--workers", type=int, help="DataLoader worker processes per rank (default: the run's)")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="as for scorch-train")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto: one GPU per local rank when CUDA is available")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks on errors")
    return p


def run(ns: argparse.Namespace) -> int:
    from .. import distributed as dist
    from ..evaluate.eval_run import TestOptions, test_run  # import torch, which --help does without

    options = TestOptions(ns.run_dir, ns.checkpoint, ns.split, ns.predictions, ns.dataset_path, ns.batch_size,
                          ns.workers, ns.backend, ns.device, ns.raw)
    result = test_run(options)
    if dist.is_rank0():
        for key, value in result.items():
            if key.startswith(f"{options.split}/"):
                print(f"{key} {value:.6g}")
        print(f"wrote {result['file']}" + (f" and {result['predictions']}" if "predictions" in result else ""))
    return 0


def _error_prefix() -> str:
    from .. import distributed as dist

    return "scorch-test" if dist.world_size() == 1 else f"scorch-test[rank {dist.rank()}]"


COMMAND = Command("scorch-test", build_parser, run, rank=lambda: launch.detect().rank, prefix=_error_prefix)


def main(argv: Sequence[str] | None = None) -> int:
    """Run scorch-test; returns the exit code (0 ok, 1 failure, 2 bad input). The process goes on
    afterwards: the process group is torn down after a success."""
    code = COMMAND.main(argv)
    from .. import distributed as dist

    if code == 0 or dist.world_size() == 1:
        dist.shutdown()
    return code


def console_main() -> None:
    """Several ranks leave without the interpreter's teardown (see scorch.distributed.exit_process):
    together after a success, at once after a failure, so that the launcher ends the whole job."""
    code = COMMAND.main(None)  # --help ends here (SystemExit), before torch is imported
    from .. import distributed as dist

    together = code == 0 or dist.world_size() == 1
    if together:
        dist.leave()
    dist.exit_process(code, clean=together)


if __name__ == "__main__":
    console_main()
