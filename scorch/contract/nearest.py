"""What a misspelt setting name probably meant: ``did you mean batch_size?`` instead of a list of 40."""
from __future__ import annotations

import difflib
from collections.abc import Iterable

# Names other tools use for scorch's settings (Lightning, Hugging Face, the original scorch).
ALIASES = {
    "learning_rate": "lr", "learningrate": "lr", "bs": "batch_size", "batchsize": "batch_size",
    "train_batch_size": "batch_size", "per_device_train_batch_size": "batch_size", "num_epochs": "epochs",
    "n_epochs": "epochs", "max_epochs": "epochs", "num_train_epochs": "epochs", "wd": "weight_decay",
    "grad_clip": "clip_grad", "gradient_clip_val": "clip_grad", "max_grad_norm": "clip_grad",
    "accumulate_grad_batches": "accumulate", "gradient_accumulation_steps": "accumulate",
    "num_workers": "workers", "precision": "amp", "early_stopping_patience": "patience",
    "warmup": "warmup_steps", "save_steps": "checkpoint_every", "eval_steps": "val_every",
}
SHOWN = 8  # at most this many valid names are listed when nothing is close


def nearest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name ``name`` most likely meant, or None."""
    options = sorted(set(valid))
    key = name.replace("-", "_").lower()
    alias = ALIASES.get(key)
    if alias in options:
        return alias
    close = difflib.get_close_matches(key, options, n=1, cutoff=0.6)
    if close:
        return close[0]
    return next((o for o in options if len(key) > 2 and len(o) > 2 and (o.startswith(key) or key.startswith(o))), None)


def hint(name: str, valid: Iterable[str], more: str = "", prefix: str = "") -> str:
    """``did you mean X?``, else the valid names (at most :data:`SHOWN`, then ``more``); names are
    compared without ``prefix`` (``model.``) and shown with it."""
    options = sorted(set(valid))
    guess = nearest(name, options)
    if guess is not None:
        return f"did you mean {prefix}{guess}?"
    if not options:
        return "there are none"
    shown = [prefix + o for o in options]
    if len(options) <= SHOWN:
        return "valid: " + ", ".join(shown)
    return more or ("valid: " + ", ".join(shown[:SHOWN]) + f" and {len(options) - SHOWN} more")
