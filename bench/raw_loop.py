"""The hand-written loop a user would otherwise write: same Network, data, batch size,
optimizer, seed and epochs as scorch; a validation pass each epoch; one print per epoch.

    python -m bench.raw_loop --work JSON          # one process
    mpirun -np 2 python -m bench.raw_loop --ddp --work JSON   # DistributedDataParallel, gloo

With ``--root DIR`` (one process) it also keeps what scorch keeps, as a user would write it:
each epoch a line in DIR/history.csv, the epoch's means in TensorBoard (tensorboardX) and
DIR/last.pt (``torch.save`` of model, optimizer and epoch). No progress bar.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import csv
import os
import sys

import torch
import torch.distributed as tdist
from torch.utils.data import DataLoader, DistributedSampler

from bench._env import rank_env
from bench._work import Work
from bench.workload import Network, accuracy, criterion
from bench.workload_data import DataSet, DataSetIndex


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--work", required=True)
    p.add_argument("--ddp", action="store_true")
    p.add_argument("--root", help="write history.csv, TensorBoard and last.pt here every epoch")
    args = p.parse_args()
    work = Work.from_json(args.work)

    rank, world = rank_env() if args.ddp else (0, 1)
    if args.ddp:
        tdist.init_process_group("gloo", rank=rank, world_size=world)
    device = torch.device(work.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", os.environ.get("LOCAL_RANK", "0"))))

    index = DataSetIndex(None, **work.dataset)
    train_set, valid_set = DataSet(index, "train"), DataSet(index, "valid")
    torch.manual_seed(work.seed)
    network = Network(**work.model).to(device)
    if work.compile:
        network.compile(dynamic=False)  # as scorch --compile does
    model = torch.nn.parallel.DistributedDataParallel(network) if args.ddp else network
    optimizer = torch.optim.Adam(network.parameters(), lr=work.lr)
    sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=work.seed) if args.ddp else None
    train_loader = DataLoader(train_set, batch_size=work.batch_size, shuffle=sampler is None, sampler=sampler,
                              num_workers=work.workers, pin_memory=cuda, generator=torch.Generator().manual_seed(work.seed))
    valid_loader = DataLoader(valid_set, batch_size=work.batch_size, num_workers=work.workers, pin_memory=cuda)
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if work.amp == "bf16" else contextlib.nullcontext
    writer = None
    if args.root and rank == 0:
        from tensorboardX import SummaryWriter

        os.makedirs(args.root, exist_ok=True)
        writer = SummaryWriter(os.path.join(args.root, "tensorboard"))

    for epoch in range(1, work.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, accuracy, count
        for (x,), (y,) in train_loader:
            x, y = x.to(device, non_blocking=cuda), y.to(device, non_blocking=cuda)
            with amp():
                preds = model([x])
                loss = criterion(preds, [y])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                n = len(y)
                sums += torch.stack([loss.detach().double() * n, accuracy(preds, [y]).double() * n,
                                     torch.tensor(n, dtype=torch.float64, device=device)])
        if args.ddp:
            tdist.all_reduce(sums)
        train_loss, train_acc, count = sums.tolist()
        line = f"epoch {epoch}: train loss {train_loss / count:.4f} accuracy {train_acc / count:.4f}"
        if len(valid_set) > 0 and rank == 0:
            model.eval()
            vsums = torch.zeros(3, dtype=torch.float64, device=device)
            with torch.no_grad():
                for (x,), (y,) in valid_loader:
                    x, y = x.to(device, non_blocking=cuda), y.to(device, non_blocking=cuda)
                    with amp():
                        preds = network([x])
                        loss = criterion(preds, [y])
                    n = len(y)
                    vsums += torch.stack([loss.double() * n, accuracy(preds, [y]).double() * n,
                                          torch.tensor(n, dtype=torch.float64, device=device)])
            vloss, vacc, vcount = vsums.tolist()
            line += f", valid loss {vloss / vcount:.4f} accuracy {vacc / vcount:.4f}"
        if rank == 0:
            print(line, flush=True)
        if writer is not None and args.root:
            row = {"epoch": epoch, "train/loss": train_loss / count, "train/accuracy": train_acc / count}
            if len(valid_set) > 0:
                row.update({"valid/loss": vloss / vcount, "valid/accuracy": vacc / vcount})
            for key, value in row.items():
                if key != "epoch":
                    writer.add_scalar(key, value, epoch)
            writer.flush()
            history = os.path.join(args.root, "history.csv")
            with open(history, "a", newline="") as f:
                out = csv.DictWriter(f, fieldnames=list(row))
                if epoch == 1:
                    out.writeheader()
                out.writerow(row)
            torch.save({"model": network.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch},
                       os.path.join(args.root, "last.pt"))
    if writer is not None:
        writer.close()
    if args.ddp:
        # Wait for every rank, then leave without gloo's C++ teardown, which aborted a rank racing
        # its peer's teardown once in CI ("terminate called without an active exception"):
        # the same exit scorch-train takes (scorch.distributed.exit_process).
        tdist.barrier()
        atexit._run_exitfuncs()  # bench.workload writes its timing stamps at exit
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
