"""MODEL_FILE: a small GAN on 2-D points, trained by a custom step with two optimizers.

``Socket.optimizers()`` names the generator's and the discriminator's optimizers;
``Socket.training_step(batch, step)`` computes both losses on the micro-batch, sends each into its
own optimizer's parameters (``step.backward(loss, name)``) and steps both (``step.update(name)``).
Every backward comes before the first update, so both losses of a step see the same weights and
the result does not depend on how the step's samples fall over ranks and micro-batches.
The criterion (the discriminator's loss) and the metrics are what scorch records, from the
predictions training_step returns (and from Network.forward in validation).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def mlp(n_in, n_out, hidden):
    return nn.Sequential(nn.Linear(n_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                         nn.Linear(hidden, n_out))


class Network(nn.Module):
    def __init__(self, hidden=64, noise_dim=2):
        super().__init__()
        self.generator = mlp(noise_dim, 2, hidden)
        self.discriminator = mlp(2, 1, hidden)

    def forward(self, inputs):
        real, noise = inputs
        fake = self.generator(noise)
        return [self.discriminator(real), self.discriminator(fake), fake]


def ring_distance(points, radius=2.0):
    """Mean distance of the points to the nearest of the ring's 8 centres (in float32: --amp gives half precision)."""
    points = points.float()
    angle = torch.arange(8, dtype=points.dtype, device=points.device) * (2 * math.pi / 8)
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return torch.cdist(points, centres).min(dim=1).values.mean()


class Socket:
    def __init__(self, model):
        self.model = model
        self.trainable_modules = nn.ModuleList([model.generator, model.discriminator])

    def optimizers(self):
        return {
            "discriminator": torch.optim.Adam(self.model.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999)),
            "generator": (torch.optim.Adam(self.model.generator.parameters(), lr=1e-3, betas=(0.5, 0.999)), None),
        }

    def training_step(self, batch, step):
        (real, noise), _ = batch
        fake = self.model.generator(noise)
        d_real = self.model.discriminator(real)
        d_fake = self.model.discriminator(fake.detach())
        d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        g_loss = F.softplus(-self.model.discriminator(fake)).mean()  # into the generator's parameters only
        step.backward(d_loss, "discriminator")
        step.backward(g_loss, "generator")
        step.update("discriminator")
        step.update("generator")
        return [d_real, d_fake, fake]

    def criterion(self, preds, targets):
        d_real, d_fake, _ = preds
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()

    def metrics(self, preds, targets):
        _, d_fake, fake = preds
        return {"g_loss": F.softplus(-d_fake).mean(), "ring_distance": ring_distance(fake)}
