"""DATASET_FILE: train on noisy_sine samples that scorch-gen generated and cached.

``--dataset-path`` is the directory holding datasets.py (where gen_cache/ is).
Mode "train" reads group 'train'; "valid" and "test" read group 'valid'.
"""
from scorch.gen import CachedDataset


class DataSetIndex:
    def __init__(self, path="."):
        self.path = path or "."


class DataSet:
    def __init__(self, ds_index, mode="train"):
        group = "train" if mode == "train" else "valid"
        # Parameter set 0 (the first one generated). A dict of non-default values works too; it is
        # matched against the stored values, or, with datasets=<path>/datasets.py, resolved by the
        # generator's defaults (reading imports no code from the data directory unless told to).
        self.samples = CachedDataset(ds_index.path, "noisy_sine", 0, group)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        x, y = self.samples[i]
        return [x], [y]
