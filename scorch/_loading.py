"""``scorch.loading()``: whether the Network being built gets its weights from a scorch checkpoint
right afterwards (``load_run``, ``scorch-test``, a ``--resume``, an ``--init-from`` of the whole
Network). A Network that loads pretrained weights itself in ``__init__`` (a config value naming a
file) skips that then, so that the run's checkpoint is all a loaded or moved run needs::

    if pretrained and not scorch.loading():
        self.backbone.load_state_dict(torch.load(pretrained))

Cheap to import (no torch): a model file may import it at the top.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

_depth = 0


def loading() -> bool:
    """True while scorch builds a Network whose weights a checkpoint replaces next."""
    return _depth > 0


@contextlib.contextmanager
def from_checkpoint(active: bool = True) -> Iterator[None]:
    """Within: :func:`loading` is True (when ``active``)."""
    global _depth
    _depth += int(active)
    try:
        yield
    finally:
        _depth -= int(active)
