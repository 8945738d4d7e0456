"""DATASET_FILE for scorch, written by `scorch-init --template cnn`: scikit-learn's bundled 8x8
digits (1797 images, no download), with random shifts and noise as augmentation of the training
images.

    scorch-train ... --set dataset.shift=0    # a setting of the DataSetIndex: no shifts

Replace ``DataSetIndex`` with your own images: ``--dataset-path PATH`` arrives there as ``path``.
"""
import numpy as np
import torch


class DataSetIndex:
    """Built once per run and shared by every mode: the images, split 80 / 20 by a fixed permutation."""

    def __init__(self, path=None, shift=1, noise=0.05):
        try:
            from sklearn.datasets import load_digits
        except ImportError as exc:
            raise ImportError("the cnn template reads scikit-learn's digits: pip install scikit-learn") from exc
        digits = load_digits()
        self.images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
        self.target = torch.tensor(digits.target, dtype=torch.int64)
        order = np.random.RandomState(0).permutation(len(self.target))
        n_train = int(0.8 * len(order))
        self.ids = {"train": order[:n_train], "valid": order[n_train:], "test": order[n_train:]}
        self.shift, self.noise = shift, noise  # how strong the augmentation is


class DataSet:
    def __init__(self, ds_index, mode):
        self.index, self.ids = ds_index, ds_index.ids[mode]
        self.augment = mode == "train"  # validation and test see the images as they are

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        j = self.ids[i]
        image = self.index.images[j]
        if self.augment:
            # Drawn from torch's global RNG, which scorch seeds per batch: a resumed run draws
            # exactly what an uninterrupted one would.
            s = self.index.shift
            if s:
                dy, dx = torch.randint(-s, s + 1, (2,)).tolist()
                image = torch.roll(image, shifts=(dy, dx), dims=(1, 2))
            image = (image + self.index.noise * torch.randn_like(image)).clamp(0, 1)
        return [image], [self.index.target[j]]
