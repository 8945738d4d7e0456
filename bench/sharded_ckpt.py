"""Save and load time of a sharded checkpoint against a one-file one, under ``mpirun -np N``:

- **full** (what DDP and Horovod runs write): rank 0 writes the whole model and Adam state with
  :func:`scorch.rundir.checkpoint.save` (atomic, fsync); every rank loads the file whole;
- **sharded** (``--strategy fsdp``): every rank writes its shards with
  :func:`scorch.rundir.shards.save` (torch.distributed.checkpoint) and loads them back sharded;
  ``read whole`` is one process reading the sharded checkpoint whole (scorch-test, load_run, export).

``python -m bench.sharded_ckpt --work JSON --dir DIR --out FILE`` (rank 0 writes FILE)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as tdist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict
from torch.distributed.fsdp import fully_shard

from bench._work import Work
from bench.workload import Network
from scorch.rundir import checkpoint, shards
from scorch.strategies.fsdp import default_units


def _adam_state(net: torch.nn.Module) -> torch.optim.Optimizer:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for p in net.parameters():
        p.grad = torch.full_like(p, 1e-3)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return opt


def _timed(fn: Callable[..., object], *args: object) -> float:
    tdist.barrier()
    start = time.perf_counter()
    fn(*args)
    tdist.barrier()
    return time.perf_counter() - start


def _read_whole(path: Path) -> None:
    shards.read_whole(path)


def _nothing(*args: object) -> None:
    pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--work", required=True)
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    rank, world = int(os.environ["OMPI_COMM_WORLD_RANK"]), int(os.environ["OMPI_COMM_WORLD_SIZE"])
    tdist.init_process_group("gloo", rank=rank, world_size=world)
    work = Work.from_json(args.work)
    args.dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    full_net = Network(**work.model)
    full_opt = _adam_state(full_net)
    state = {"model": full_net.state_dict(), "optimizer": full_opt.state_dict(), "epoch": 1, "step": 1}
    nbytes = sum(t.numel() * t.element_size() for t in state["model"].values())
    nbytes += sum(t.numel() * t.element_size() for s in state["optimizer"]["state"].values() for t in s.values()
                  if isinstance(t, torch.Tensor))
    file = args.dir / "full.pt"
    times: dict[str, list[float]] = {"full save": [], "full load": [], "sharded save": [], "sharded load": [], "read whole": []}
    for _ in range(args.reps):
        times["full save"].append(_timed(checkpoint.save if rank == 0 else _nothing, file, state))
        times["full load"].append(_timed(checkpoint.load, file))
    del state, full_opt
    net = Network(**work.model)
    for unit in default_units(net):
        fully_shard(unit)
    fully_shard(net)
    opt = _adam_state(net)
    model_sd, optim_sd = get_state_dict(net, opt, options=StateDictOptions())
    for i in range(args.reps):
        target = args.dir / f"sharded-{i}"
        times["sharded save"].append(_timed(shards.save, target, model_sd, optim_sd))
        times["sharded load"].append(_timed(shards.load, target, model_sd, optim_sd))
        times["read whole"].append(_timed(_read_whole if rank == 0 else _nothing, target))
    if rank == 0:
        args.out.write_text(json.dumps({"bytes": nbytes, "world": world, "runs": times}))
        shutil.rmtree(args.dir, ignore_errors=True)
    tdist.barrier()
    tdist.destroy_process_group()


if __name__ == "__main__":
    main()
