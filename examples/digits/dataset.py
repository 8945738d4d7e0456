"""DATASET_FILE: scikit-learn's bundled 8x8 digits (1797 images, no download).

80% train / 20% valid / the same valid images as test, split by a fixed permutation.
``--dataset-path`` may name an .npz with arrays ``images`` (N, 8, 8) and ``target`` (N,);
without it the copy inside scikit-learn is used.
"""
import numpy as np
import torch


class DataSetIndex:
    def __init__(self, path=None):
        if path:
            with np.load(path, allow_pickle=False) as f:
                images, target = f["images"], f["target"]
        else:
            from sklearn.datasets import load_digits

            digits = load_digits()
            images, target = digits.images, digits.target
        # Pixel values are 0..16; scale to 0..1 once, here, for all modes.
        self.images = torch.tensor(images / 16.0, dtype=torch.float32).unsqueeze(1)
        self.target = torch.tensor(target, dtype=torch.int64)
        order = np.random.RandomState(0).permutation(len(self.target))
        n_train = int(0.8 * len(order))
        self.split = {"train": order[:n_train], "valid": order[n_train:], "test": order[n_train:]}


class DataSet:
    def __init__(self, ds_index, mode="train"):
        self.index = ds_index
        self.mode = mode
        self.ids = ds_index.split[mode]

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        j = self.ids[i]
        return [self.index.images[j]], [self.index.target[j]]
