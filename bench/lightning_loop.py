"""The same work under PyTorch Lightning's Trainer, with the features scorch has on by
default: progress bar, a TensorBoard logger, per-epoch checkpoints (last and best by
valid/loss), epoch-level train and valid metrics. Runs in bench/.venv-lightning:

    bench/.venv-lightning/bin/python -m bench.lightning_loop --work JSON --root DIR
"""
from __future__ import annotations

import argparse

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader

from bench._work import Work
from bench.workload import Network, accuracy, criterion
from bench.workload_data import DataSet, DataSetIndex


class Module(L.LightningModule):
    def __init__(self, work: Work):
        super().__init__()
        self.work = work
        self.network = Network(**work.model)

    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        (x,), (y,) = batch
        preds = self.network([x])
        loss = criterion(preds, [y])
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        self.log("train/accuracy", accuracy(preds, [y]), on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        (x,), (y,) = batch
        preds = self.network([x])
        self.log("valid/loss", criterion(preds, [y]), on_epoch=True, batch_size=len(y))
        self.log("valid/accuracy", accuracy(preds, [y]), on_epoch=True, batch_size=len(y))

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        return torch.optim.Adam(self.parameters(), lr=self.work.lr)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--work", required=True)
    p.add_argument("--root", required=True)
    args = p.parse_args()
    work = Work.from_json(args.work)
    cuda = work.device == "cuda"

    index = DataSetIndex(None, **work.dataset)
    train_set, valid_set = DataSet(index, "train"), DataSet(index, "valid")
    torch.manual_seed(work.seed)
    module = Module(work)
    train_loader = DataLoader(train_set, batch_size=work.batch_size, shuffle=True, num_workers=work.workers,
                              pin_memory=cuda, generator=torch.Generator().manual_seed(work.seed))
    valid_loader = DataLoader(valid_set, batch_size=work.batch_size, num_workers=work.workers, pin_memory=cuda)
    has_valid = len(valid_set) > 0
    checkpoint = ModelCheckpoint(dirpath=f"{args.root}/checkpoints", monitor="valid/loss" if has_valid else "train/loss", save_last=True)
    trainer = L.Trainer(
        accelerator="gpu" if cuda else "cpu", devices=1, max_epochs=work.epochs,
        precision="bf16-mixed" if work.amp == "bf16" else "32-true",
        enable_progress_bar=True, logger=TensorBoardLogger(args.root, name="tensorboard"),
        callbacks=[checkpoint], default_root_dir=args.root, enable_model_summary=False,
    )
    trainer.fit(module, train_loader, valid_loader if has_valid else None)


if __name__ == "__main__":
    main()
