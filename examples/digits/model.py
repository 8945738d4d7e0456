"""MODEL_FILE: a small CNN for 8x8 digits."""
import torch
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

    def split_metrics(self, preds, targets):
        # The whole split at once (every image once, in dataset order): the macro F1 is no mean
        # over images, so per-batch averages would get it wrong.
        guess, truth = preds[0].argmax(dim=1), targets[0]
        f1 = []
        for c in range(10):
            hits = ((guess == c) & (truth == c)).sum().item()
            total = (guess == c).sum().item() + (truth == c).sum().item()
            f1.append(2 * hits / total if total else 1.0)
        return {"macro_f1": sum(f1) / len(f1)}

    def visualize(self, inputs, preds, targets):
        # TensorBoard, every epoch: the first 8 digits of rank 0's first validation batch side by
        # side, and what the network made of them.
        digits = inputs[0][:8, 0]  # (n, 8, 8), values in [0, 1]
        strip = torch.cat(list(digits), dim=1)  # HW: (8, 8 * n)
        guesses = " ".join(f"{t}:{g}" for t, g in zip(targets[0][:8].tolist(), preds[0][:8].argmax(dim=1).tolist()))
        return {"images": {"digits": strip}, "texts": {"target:guess": guesses}}
