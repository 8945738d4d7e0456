"""``scorch-export RUN_DIR --out FILE``: a checkpoint's weights as a plain ``state_dict`` file.

The file holds the Network's ``state_dict`` (the Network's own names, whole, on the CPU), nothing
else: ``network.load_state_dict(torch.load(FILE, weights_only=True))`` loads it without scorch. Any
checkpoint scorch-train writes exports, one file or sharded (read whole in this one process). A
checkpoint of an ``--ema`` run exports its moving average (``--raw``: its raw weights)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .._atomic import atomic_open
from ..errors import ScorchError
from ..rundir.layout import BEST, CHECKPOINTS, LAST
from ._runner import Command, Parser


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="scorch-export", description="Write the Network's weights of a checkpoint of RUN_DIR as a plain "
               "state_dict file, loadable with torch.load(FILE, weights_only=True) into the Network (also from a "
               "sharded checkpoint of --strategy fsdp/hsdp).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of scorch-train (RUN_ROOT/NAME)")
    p.add_argument("--checkpoint", default="best", help=f"best, last, or a checkpoint (best: {BEST}, or {LAST} when no "
                   f"epoch was ever the best; a path: as given, else in RUN_DIR or RUN_DIR/{CHECKPOINTS})")
    p.add_argument("--out", required=True, help="the file to write (refused when it exists, unless --force)")
    p.add_argument("--raw", action="store_true", help="the raw weights of a checkpoint of an --ema run (default: its "
                   "moving average)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks on errors")
    return p


def run(ns: argparse.Namespace) -> int:
    out = Path(ns.out)
    if out.is_dir():
        raise ScorchError(f"--out {out}: is a directory, expected a file to write")
    if out.exists() and not ns.force:
        raise ScorchError(f"--out {out}: exists; give another file, or --force to replace it")
    if not out.parent.is_dir():
        raise ScorchError(f"--out {out}: its directory {out.parent} does not exist")
    import torch  # not for --help

    from ..rundir.load_run import load_run

    loaded = load_run(ns.run_dir, ns.checkpoint, weights="raw" if ns.raw else "ema")
    weights = {k: v.detach().cpu().contiguous() for k, v in loaded.network.state_dict().items()}
    with atomic_open(out, "wb") as f:
        torch.save(weights, f)
    n = sum(v.numel() for v in weights.values() if v.is_floating_point())
    print(f"wrote {out}: {len(weights)} tensors ({n:,} values) of {loaded.checkpoint.path} (epoch {loaded.checkpoint.epoch}, "
          f"step {loaded.checkpoint.step}{', the --ema average' if loaded.weights == 'ema' else ''})")
    return 0


COMMAND = Command("scorch-export", build_parser, run)
main, console_main = COMMAND.main, COMMAND.console_main


if __name__ == "__main__":
    console_main()
