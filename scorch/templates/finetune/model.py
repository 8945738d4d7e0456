"""MODEL_FILE for scorch, written by `scorch-init --template finetune`: a frozen backbone and a
trainable head, the first phase of a fine-tune. Edit freely.

    scorch-check --model model.py --dataset dataset.py     # model.frozen: the backbone never changes
    scorch-train --model model.py --dataset dataset.py --epochs 5
    scorch-train ... --set model.pretrained='"backbone.pt"'  # your pretrained backbone's weights

Only the Socket's ``trainable_modules`` are optimised; every other module with parameters is
frozen: its weights are not updated, not synchronised between ranks, and its BatchNorm and
Dropout stay in eval mode (running statistics never move).
"""
import torch
import torch.nn.functional as F
from torch import nn


class Backbone(nn.Module):
    """Stands for a pretrained network (a torchvision model, say): features of the inputs."""

    def __init__(self, n_features, width):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features, width), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(),
        )

    def forward(self, x):
        return self.layers(x)


class Network(nn.Module):
    def __init__(self, n_features=16, n_classes=4, width=128, pretrained=None):
        super().__init__()
        with torch.random.fork_rng():  # without pretrained weights: the same random features whatever --seed
            torch.manual_seed(0)
            self.backbone = Backbone(n_features, width)
        if pretrained:
            # The backbone's state_dict, e.g. saved with torch.save(model.backbone.state_dict(), path).
            self.backbone.load_state_dict(torch.load(pretrained, map_location="cpu", weights_only=True))
        self.head = nn.Linear(width, n_classes)  # new for this task: the one part that trains

    def forward(self, inputs):
        (x,) = inputs
        return [self.head(self.backbone(x))]


class Socket:
    def __init__(self, model):
        self.model = model
        self.trainable_modules = nn.ModuleList([model.head])
        # Phase 2 of a fine-tune: train the backbone too, at a lower rate, e.g.
        # self.trainable_modules = nn.ModuleList([model.backbone, model.head])  and  --lr 1e-4

    def criterion(self, preds, targets):
        return F.cross_entropy(preds[0], targets[0])

    def metrics(self, preds, targets):
        return {"main": (preds[0].argmax(dim=1) == targets[0]).float().mean()}

    def optimizer(self, params):
        # `params` are the trainable modules' parameters only: the head's.
        return torch.optim.Adam(params, lr=1e-2)
