"""MODEL_FILE for scorch, written by `scorch-init --template cnn`: a small CNN with BatchNorm that
classifies 8x8 images of digits. Edit freely.

    scorch-check --model model.py --dataset dataset.py               # is everything wired up?
    scorch-train --model model.py --dataset dataset.py --epochs 5    # train it
    scorch-train ... --set model.channels=32                         # a setting of the Network

The contract: ``Network`` (a torch.nn.Module) and ``Socket`` (how to train it).
"""
import torch
import torch.nn.functional as F
from torch import nn


def block(c_in, c_out):
    # BatchNorm keeps running statistics: scorch averages them over the ranks before every
    # validation and checkpoint, so each rank evaluates the same model.
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class Network(nn.Module):
    # Keyword arguments with defaults are the model's settings (--set model.NAME=VALUE).
    def __init__(self, channels=16, n_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            block(1, channels), block(channels, channels), nn.MaxPool2d(2),           # 8x8 -> 4x4
            block(channels, 2 * channels), nn.AdaptiveAvgPool2d(1), nn.Flatten(),     # -> (N, 2 * channels)
        )
        self.head = nn.Linear(2 * channels, n_classes)

    def forward(self, inputs):
        (images,) = inputs  # (N, 1, 8, 8), values in [0, 1]
        return [self.head(self.features(images))]


class Socket:
    def __init__(self, model):
        self.model = model
        self.trainable_modules = nn.ModuleList([model.features, model.head])

    def criterion(self, preds, targets):
        return F.cross_entropy(preds[0], targets[0])

    def metrics(self, preds, targets):
        # A metric "main" is the default --monitor (maximised): best.pt is the most accurate epoch.
        return {"main": (preds[0].argmax(dim=1) == targets[0]).float().mean()}

    def visualize(self, inputs, preds, targets):
        # Rank 0's first validation batch, every epoch: in TensorBoard and as
        # RUN_DIR/visuals/epoch-NNN/digits.png and guesses.txt.
        digits = inputs[0][:8, 0]  # (8, 8, 8)
        guesses = " ".join(f"{t}:{g}" for t, g in zip(targets[0][:8].tolist(), preds[0][:8].argmax(dim=1).tolist()))
        return {"images": {"digits": torch.cat(list(digits), dim=1)}, "texts": {"guesses": guesses}}

    def optimizer(self, params):
        return torch.optim.AdamW(params, lr=3e-3, weight_decay=1e-4)
