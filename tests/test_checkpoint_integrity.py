"""A checkpoint carries a CRC-32 of its content, checked on every load: bytes flipped inside tensor
data on disk (which torch's zip reader does not notice) make scorch refuse the checkpoint in one
line, or fall back to the newest good one."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from scorch.cli.train import main
from scorch.errors import ScorchError
from scorch.rundir import checkpoint
from tests.helpers import base_args


def flip_tensor_byte(path: Path) -> None:
    """Flip one byte in the middle of the largest tensor's data, leaving the zip archive readable."""
    with zipfile.ZipFile(path) as z:
        entry = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        assert entry.compress_type == zipfile.ZIP_STORED
    with open(path, "r+b") as f:
        f.seek(entry.header_offset + 26)
        name_len, extra_len = (int.from_bytes(f.read(2), "little") for _ in range(2))
        at = entry.header_offset + 30 + name_len + extra_len + entry.file_size // 2
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x10]))


def test_flipped_tensor_bytes_are_refused_in_one_line(tmp_path, capsys):
    assert main(base_args(tmp_path, "r", "--epochs", "1")) == 0
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    torch.load(last, weights_only=True)  # torch reads it without a word
    flip_tensor_byte(last)
    torch.load(last, weights_only=True)
    with pytest.raises(ScorchError, match="does not match the checksum saved with it"):
        checkpoint.load(last)
    capsys.readouterr()
    assert main(base_args(tmp_path, "r", "--epochs", "2", "--resume")) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("scorch: ")]
    assert len(err) == 1 and f"checkpoint {last} is corrupt" in err[0], err


def test_a_resume_falls_back_to_the_newest_good_checkpoint(tmp_path, capsys):
    assert main(base_args(tmp_path, "r", "--epochs", "2", "--keep-checkpoints", "2")) == 0
    flip_tensor_byte(tmp_path / "r" / "checkpoints" / "last.pt")  # also step 2's file: a hard link
    capsys.readouterr()
    assert main(base_args(tmp_path, "r", "--epochs", "3", "--resume")) == 0
    err = capsys.readouterr().err
    assert "does not match the checksum" in err and "resuming from" in err and "epoch 1" in err


def test_a_checkpoint_without_a_checksum_still_loads(tmp_path):
    """Written by a scorch before the checksum: taken as it is."""
    assert main(base_args(tmp_path, "r", "--epochs", "1")) == 0
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    del state["checksum"]
    torch.save(state, last)
    assert checkpoint.load(last)["epoch"] == 1
