"""Fast, pickle-free reads of the ``.npz`` chunks: straight into the caller's array.

``np.savez`` stores members uncompressed, so each array's bytes lie
contiguously in the file after a zip local header and an ``.npy`` header.
We read the zip central directory and those headers ourselves (a few
``pread`` calls) and ``preadv`` the rows into a slice of the output array.
That skips the chunked copy ``np.load`` makes for zip members, so
``Cache.get`` over several files costs about what ``np.load`` of one file
does. The ``.npy`` headers are parsed by numpy's own reader (memoised on
their exact bytes); object dtypes are refused, so nothing is ever
unpickled. Anything unusual (compressed members, zip64 offsets, Fortran
order) goes through ``np.load(..., allow_pickle=False)`` instead.
"""
from __future__ import annotations

import functools
import io
import math
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

_EOCD = struct.Struct("<4s4H2LH")            # end of central directory, 22 bytes
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")   # central directory entry, 46 bytes
_LOCAL = struct.Struct("<4s2B4HL2L2H")       # local file header, 30 bytes
_EOCD_SIG, _CENTRAL_SIG, _LOCAL_SIG = b"PK\x05\x06", b"PK\x01\x02", b"PK\x03\x04"
_HEAD_READ = 1024


class _Unusual(Exception):
    """Not laid out the way np.savez writes small files: use np.load."""


@dataclass(frozen=True)
class Member:
    """Where one array's data starts in the file, and what it is."""

    offset: int
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def row_bytes(self) -> int:
        return math.prod(self.shape[1:]) * self.dtype.itemsize


@functools.lru_cache(maxsize=1024)
def _parse_npy_header(raw: bytes) -> tuple[tuple[int, ...], bool, np.dtype]:
    """numpy's own parse of one ``.npy`` header (magic included); a pure function."""
    f = io.BytesIO(raw)
    version = npy_format.read_magic(f)
    if version == (1, 0):
        return npy_format.read_array_header_1_0(f)
    if version in ((2, 0), (3, 0)):
        return npy_format.read_array_header_2_0(f)
    raise _Unusual(f"npy version {version}")


def _central_directory(fd: int, size: int) -> dict[str, tuple[int, int]]:
    """``{member name: (local header offset, compression)}`` from the zip's end records."""
    tail_start = max(0, size - 4096)
    tail = os.pread(fd, size - tail_start, tail_start)
    if len(tail) < _EOCD.size or tail[-_EOCD.size:-_EOCD.size + 4] != _EOCD_SIG:
        raise _Unusual("no plain end-of-central-directory record")
    _, _, _, _, entries, cd_size, cd_offset, _ = _EOCD.unpack(tail[-_EOCD.size:])
    if cd_offset == 0xFFFFFFFF or entries == 0xFFFF:
        raise _Unusual("zip64")
    cd = tail[cd_offset - tail_start:cd_offset - tail_start + cd_size] if cd_offset >= tail_start else os.pread(fd, cd_size, cd_offset)
    out = {}
    pos = 0
    for _ in range(entries):
        fields = _CENTRAL.unpack_from(cd, pos)
        if fields[0] != _CENTRAL_SIG:
            raise _Unusual("bad central directory")
        name_len, extra_len, comment_len = fields[12], fields[13], fields[14]
        name = cd[pos + _CENTRAL.size:pos + _CENTRAL.size + name_len].decode()
        offset = fields[18]
        if offset == 0xFFFFFFFF:
            raise _Unusual("zip64 offset")
        out[name] = (offset, fields[6])
        pos += _CENTRAL.size + name_len + extra_len + comment_len
    return out


def _member(fd: int, key: str, offset: int, compression: int) -> Member:
    if compression != zipfile.ZIP_STORED:
        raise _Unusual("compressed")
    head = os.pread(fd, _HEAD_READ, offset)
    local = _LOCAL.unpack_from(head)
    if local[0] != _LOCAL_SIG:
        raise _Unusual("bad local header")
    start = _LOCAL.size + local[-2] + local[-1]
    npy = head[start:]
    if len(npy) < 10:
        raise _Unusual("short header")
    major = npy[6]
    header_len = (struct.unpack_from("<H", npy, 8)[0] + 10 if major == 1
                  else struct.unpack_from("<I", npy, 8)[0] + 12)
    if header_len > len(npy):
        npy = os.pread(fd, header_len, offset + start)
    shape, fortran, dtype = _parse_npy_header(bytes(npy[:header_len]))
    if dtype.hasobject:
        raise ValueError(f"{key} has dtype object; chunks never hold pickles")
    if fortran and len(shape) > 1:
        raise _Unusual("fortran order")
    return Member(offset + start + header_len, dtype, tuple(shape))


def layout(fd: int, keys: tuple[str, ...]) -> dict[str, Member]:
    """Where the data of *keys* starts in the open ``.npz`` *fd* (raises _Unusual)."""
    directory = _central_directory(fd, os.fstat(fd).st_size)
    out = {}
    for key in keys:
        entry = directory.get(f"{key}.npy")
        if entry is None:
            raise KeyError(f"{key} is not in the chunk")
        out[key] = _member(fd, key, *entry)
    return out


def read_rows(path: Path, keys: tuple[str, ...], rows: int,
              out: dict[str, np.ndarray] | None, start: int) -> dict[str, np.ndarray]:
    """Copy the first *rows* rows of *keys* from *path* into ``out[key][start:start+rows]``.

    *out* is allocated for *rows* rows when None (a single-file read); returns it.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            members = layout(fd, keys)
        except _Unusual:
            return _read_with_np_load(path, keys, rows, out, start)
        if out is None:
            out = {k: np.empty((rows, *m.shape[1:]), dtype=m.dtype) for k, m in members.items()}
        for key, m in members.items():
            target = out[key]
            if target.dtype != m.dtype or target.shape[1:] != m.shape[1:]:
                raise ValueError(f"{path.name}: {key} is {m.dtype}{list(m.shape[1:])}, earlier "
                                 f"chunks {target.dtype}{list(target.shape[1:])}")
            if rows > m.shape[0]:
                raise ValueError(f"{path.name}: {key} has {m.shape[0]} rows, {rows} wanted")
            view = target[start:start + rows].reshape(-1).view(np.uint8).data  # the rows' bytes, written in place
            want, done = rows * m.row_bytes, 0
            while done < want:
                got = os.preadv(fd, [view[done:want]], m.offset + done)
                if not got:
                    raise ValueError(f"{path.name}: {key} is truncated")
                done += got
        return out
    finally:
        os.close(fd)


def _read_with_np_load(path: Path, keys: tuple[str, ...], rows: int,
                       out: dict[str, np.ndarray] | None, start: int) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k][:rows] for k in keys}
    if out is None:
        return arrays
    for k in keys:
        out[k][start:start + rows] = arrays[k]
    return out
