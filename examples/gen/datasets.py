"""Generators for scorch-gen: every function decorated with @scorch.gen.generator is a dataset."""
import numpy as np

import scorch.gen


class NoisySineParams(scorch.gen.Params):
    """Parameters of the noisy_sine dataset (class attributes are the defaults)."""

    left = -1.0     # leftmost x
    right = 1.0     # rightmost x
    std_dev = 0.1   # standard deviation of the noise added to sin(x)


# Save every 50 samples; each SLURM job asks for 1GB and --qos=test.
@scorch.gen.generator(50, NoisySineParams, memory="1GB", slurm_options="--qos=test")
def noisy_sine(size, params):
    """Yield `size` pairs (x, sin(x) + noise), x uniform in [left, right]."""
    rng = np.random.default_rng()
    for x in rng.uniform(params.left, params.right, size=size):
        yield np.array([x]), np.array([np.sin(x) + rng.normal(scale=params.std_dev)])
