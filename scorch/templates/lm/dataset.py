"""DATASET_FILE for scorch, written by `scorch-init --template lm`: characters of a generated text
(no download), cut into windows of ``context`` characters; the target of each is the same window
one character on.

    scorch-train ... --set shared.context=64     # the DataSetIndex's and the Network's (they must agree)

``DataSetIndex.model_settings()`` tells the Network the vocabulary size and the context it was given,
so that ``--set dataset.context=64`` alone reaches both too.

Replace ``text()`` with your own text (``--dataset-path PATH`` arrives in ``DataSetIndex`` as
``path``: e.g. ``open(path).read()``); keep its characters in ``ALPHABET`` (model.py has a copy).
"""
import random

import torch

ALPHABET = " .abcdefghijklmnopqrstuvwxyz"  # character i is token i; model.py's ALPHABET is the same
SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "a bird", "the farmer"]
VERBS = ["sees", "likes", "finds", "paints", "follows", "feeds"]
OBJECTS = ["the red ball", "a small fish", "the big tree", "an apple", "the river", "a yellow hat"]


def text(n_sentences=3000, seed=0):
    """Simple sentences from a fixed grammar: enough structure for a small model to learn."""
    rng = random.Random(seed)
    return " ".join(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}." for _ in range(n_sentences))


class DataSetIndex:
    """The text as tokens, split 90 / 5 / 5 by position (no window crosses two splits)."""

    def __init__(self, path=None, context=32):
        if path:
            with open(path, encoding="utf-8") as f:
                chars = f.read()
        else:
            chars = text()
        unknown = sorted(set(chars) - set(ALPHABET))
        if unknown:
            raise ValueError(f"characters outside ALPHABET: {''.join(unknown)!r}; add them there and in model.py")
        self.tokens = torch.tensor([ALPHABET.index(c) for c in chars], dtype=torch.int64)
        self.context = context
        n = len(self.tokens)
        ends = {"train": int(0.9 * n), "valid": int(0.95 * n), "test": n}
        starts = {"train": 0, "valid": ends["train"], "test": ends["valid"]}
        self.spans = {mode: (starts[mode], ends[mode]) for mode in ends}

    def model_settings(self):
        """Facts of the data that scorch passes to Network(...) (a setting given for the model wins)."""
        return {"vocab": len(ALPHABET), "context": self.context}


class DataSet:
    def __init__(self, ds_index, mode):
        self.tokens, self.context = ds_index.tokens, ds_index.context
        self.start, end = ds_index.spans[mode]
        # Windows start every context // 2 characters: overlapping, but not one per character.
        self.stride = max(1, self.context // 2)
        self.n = max(0, (end - self.start - self.context - 1) // self.stride + 1)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        at = self.start + i * self.stride
        window = self.tokens[at:at + self.context + 1]
        return [window[:-1]], [window[1:]]  # (context,) tokens in, the next (context,) tokens out
