"""MODEL_FILE: a small CNN for 8x8 digits."""
import torch.nn.functional as F
from torch import nn


class Network(nn.Module):
    def __init__(self, n_filters=16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, n_filters, 3, padding=1), nn.ReLU(),
            nn.Conv2d(n_filters, 2 * n_filters, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * n_filters * 16, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, inputs):
        (images,) = inputs
        return [self.head(self.features(images))]


class Socket:
    def __init__(self, model):
        self.model = model
        # Only these modules' parameters are optimised.
        self.trainable_modules = nn.ModuleList([model.features, model.head])

    def criterion(self, preds, targets):
        return F.cross_entropy(preds[0], targets[0])

    def metrics(self, preds, targets):
        # Per-batch means; scorch weights them by batch size over the whole split.
        return {"accuracy": (preds[0].argmax(dim=1) == targets[0]).float().mean()}
