"""Socket.visualize's images and texts as files of the run directory, one directory per epoch
(``visuals/epoch-003/``; per validation, ``visuals/step-000000120/``, with --val-every):
``<tag>.png`` for an image, ``<tag>.txt`` for a text, a tag's characters other than letters,
digits, ``.``, ``-`` and ``_`` written as ``_`` (``samples/first`` -> ``samples_first.png``).

Each file is written atomically. A resumed run removes the directories of what it redoes (after the
checkpoint's epoch, or step) before it writes them again. Images need Pillow (tensorboardX and
matplotlib install it); without it only the texts are written, and one warning says so."""
from __future__ import annotations

import io
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from .._atomic import write_bytes, write_text
from .layout import VISUALS

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_DIR = re.compile(r"^(epoch|step)-(\d+)$")


def file_stem(tag: str) -> str:
    """The file name (without suffix) of a tag: safe characters only, never hidden."""
    stem = _UNSAFE.sub("_", tag)
    return "_" + stem[1:] if stem.startswith(".") else stem


def directory(run_dir: Path, epoch: int, step: int | None = None) -> Path:
    """The directory of an epoch's visuals, or of a validation at ``step`` (--val-every)."""
    return run_dir / VISUALS / (f"epoch-{epoch:03d}" if step is None else f"step-{step:09d}")


def png(image: Any) -> bytes:
    """A CHW (C = 1, 3 or 4) or HW tensor, floats in [0, 1] or uint8, as PNG bytes."""
    import torch
    from PIL import Image

    if image.dtype != torch.uint8:
        image = (image.float().clamp(0, 1) * 255).round().to(torch.uint8)
    array = (image if image.dim() == 2 else image.permute(1, 2, 0)).contiguous().numpy()
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


class VisualFiles:
    """Writes each epoch's visuals under ``run_dir/visuals`` (the main rank's callback calls it)."""

    def __init__(self, run_dir: Path, by_step: bool):
        self.run_dir, self.by_step = run_dir, by_step
        self._warned = False

    def forget_after(self, epoch: int, step: int) -> None:
        """A resumed run redoes what comes after ``epoch`` (or ``step``): its old visuals go."""
        root = self.run_dir / VISUALS
        if not root.is_dir():
            return
        for d in root.iterdir():
            m = _DIR.match(d.name)
            if m and d.is_dir() and int(m.group(2)) > (step if m.group(1) == "step" else epoch):
                shutil.rmtree(d, ignore_errors=True)

    def write(self, epoch: int, step: int, visuals: Any) -> Path:
        where = directory(self.run_dir, epoch, step if self.by_step else None)
        where.mkdir(parents=True, exist_ok=True)
        for tag, text in visuals.texts.items():
            write_text(where / f"{file_stem(tag)}.txt", text)
        if visuals.images:
            try:
                import PIL  # noqa: F401
            except ImportError:
                if not self._warned:
                    log.warning("Socket.visualize's images are not written to %s: Pillow is not installed "
                                "(pip install pillow); the texts are", where.parent)
                    self._warned = True
                return where
        for tag, image in visuals.images.items():
            write_bytes(where / f"{file_stem(tag)}.png", png(image))
        return where
