"""Model and dataset files for the catalogue: the good test files (tests/fixtures) with one thing wrong."""
from __future__ import annotations

from pathlib import Path

from tests.helpers import DATASET, MODEL

GOOD_MODEL = Path(MODEL).read_text()
GOOD_DATASET = Path(DATASET).read_text()

FORWARD = "return [self.body(x + 0.0 * self.frozen(x))]"
CRITERION = "return nn.functional.cross_entropy(preds[0], targets[0])"
METRICS = 'return {"accuracy": correct.mean(), "first_class": (targets[0] == 0).float().mean().item()}'
TRAINABLE = "self.trainable_modules = nn.ModuleList([model.body])"
ITEM = "return [self.index.x[j]], [self.index.y[j]]"


def _with(src: str, replace: dict[str, str]) -> str:
    for old, new in replace.items():
        assert old in src, old
        src = src.replace(old, new)
    return src


def model_with(**replace: str) -> str:
    """The good model file with each key replaced by its value (keys given as ``**{old: new}``)."""
    return _with(GOOD_MODEL, replace)


def dataset_with(**replace: str) -> str:
    return _with(GOOD_DATASET, replace)


def model_plus(text: str) -> str:
    """The good model file with ``text`` appended to class Socket (it is the file's last class)."""
    return GOOD_MODEL + text


def item(expr: str) -> str:
    """The good dataset file whose ``__getitem__`` returns ``expr`` (``j``: the sample's row, ``i``: its index)."""
    return dataset_with(**{ITEM: f"return {expr}"})


NAN_AT_STEP_5 = model_with(**{
    CRITERION:
    "self.steps = getattr(self, 'steps', 0) + self.model.training  # counts training steps only\n"
    "        loss = nn.functional.cross_entropy(preds[0], targets[0])\n"
    "        return loss * float('nan') if self.model.training and self.steps == 5 else loss",
})
RAISES_AT_40 = dataset_with(**{"        j = self.ids[i]\n":
                               "        j = self.ids[i]\n        if i == 40:\n            raise OSError('bad sector')\n"})
