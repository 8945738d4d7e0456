"""MODEL_FILE for scorch, written by `scorch-init` (template mlp): a small MLP classifier. Edit freely.

    scorch-check --model model.py --dataset dataset.py               # is everything wired up?
    scorch-train --model model.py --dataset dataset.py --epochs 5    # train it

The contract: ``Network`` (a torch.nn.Module) and ``Socket`` (how to train it).
"""
import torch
import torch.nn.functional as F
from torch import nn


class Network(nn.Module):
    # Keyword arguments with defaults are the model's settings; keep them in step with dataset.py.
    def __init__(self, n_features=16, n_classes=4, hidden=64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
        )
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, inputs):
        # `inputs` is a list with one batched tensor per input the dataset returns.
        (x,) = inputs
        # Return a list too: one tensor per output (here just the class logits).
        return [self.head(self.body(x))]


class Socket:
    def __init__(self, model):
        self.model = model
        # Only the parameters of these modules are optimised; all others are frozen.
        # To fine-tune only the head of a pretrained body: nn.ModuleList([model.head]).
        self.trainable_modules = nn.ModuleList([model.body, model.head])
        # The original scorch's spelling works as well: `self.train_modules = ...`, and the
        # optimizer and scheduler as instances, which are then used, saved and restored:
        # self.optimizer = torch.optim.Adam(self.trainable_modules.parameters(), lr=3e-4)
        # self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="max")

    def criterion(self, preds, targets):
        # Lists in (the Network's outputs, the dataset's batched targets), one scalar tensor out.
        return F.cross_entropy(preds[0], targets[0])

    def metrics(self, preds, targets):
        # name -> number, a mean over the batch; scorch averages them over each split per epoch
        # (exact for means over samples). A metric "main" is the default --monitor (maximised);
        # one named "loss" is recorded as "metrics.loss" (the "loss" columns are the criterion's).
        return {"accuracy": (preds[0].argmax(dim=1) == targets[0]).float().mean()}

    def split_metrics(self, preds, targets):
        # Optional: once per evaluation, with the outputs and targets of the whole split (every
        # sample once, in dataset order, on any number of ranks), for what is not a mean over
        # samples: F1, AUC, a median. Columns valid/NAME and test/NAME, like the metrics above.
        guess, truth = preds[0].argmax(dim=1), targets[0]
        f1 = []
        for c in range(preds[0].shape[1]):
            hits = ((guess == c) & (truth == c)).sum().item()
            total = (guess == c).sum().item() + (truth == c).sum().item()
            f1.append(2 * hits / total if total else 1.0)
        return {"macro_f1": sum(f1) / len(f1)}

    def visualize(self, inputs, preds, targets):
        # Optional: rank 0's first validation batch of every epoch, shown in TensorBoard with the
        # epoch as step and written as RUN_DIR/visuals/epoch-NNN/confusion.png and first_sample.txt:
        # {"images": {tag: tensor CHW or HW, in [0, 1]}, "texts": {tag: str}}.
        n = preds[0].shape[1]
        confusion = torch.zeros(n, n)
        for t, g in zip(targets[0].tolist(), preds[0].argmax(dim=1).tolist()):
            confusion[t, g] += 1
        first = f"target {targets[0][0].item()}, predicted {preds[0][0].argmax().item()}"
        return {"images": {"confusion": confusion / confusion.max()}, "texts": {"first sample": first}}

    # Optional: your own optimizer (without it, scorch-train's --optimizer and --lr decide).
    # def optimizer(self, params):
    #     return torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2)

    # Optional: a learning-rate scheduler, stepped once per epoch.
    # def scheduler(self, optimizer):
    #     return torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
