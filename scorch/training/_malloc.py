"""glibc's allocator, set for a training loop: no page faults for memory freed and taken again every step.

With its default settings glibc gives the top of its heap back to the kernel as soon as more
than twice its (dynamic) mmap threshold lies free there, and serves blocks above that threshold
with a fresh ``mmap`` each time. A training step frees its gradients, activations and optimizer
temporaries and allocates them again in the next step, so every step faults the same pages back
in: ~2000 page faults (8 MB) per step of a 1.3M-parameter MLP, 8 to 10 % of its step time
(docs/benchmarks.md, "Why Lightning beat the hand-written loop"). With blocks up to 32 MB (the
most glibc allows) served from the heap and the heap's top kept up to 1 GiB, memory freed in one
step is reused by the next: the resident size stays at the peak the step reaches anyway instead of
going down and up again every step, and the peak itself does not change.

Only the process's own glibc allocator is set, and only when the user has not set it: any of
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_MAX_``,
a ``glibc.malloc`` tunable in ``GLIBC_TUNABLES``, or another allocator in ``LD_PRELOAD``
(jemalloc, tcmalloc, mimalloc) leaves it as it is, and so does ``SCORCH_MALLOC=system``.
DataLoader workers forked afterwards inherit the setting.
"""
from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's upper limit on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 2**30

_USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")

_done: bool | None = None  # None: not tried yet; else whether it was set


def user_choice(environ: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """Why the allocator is left alone (the user chose its settings), or None."""
    if environ.get("SCORCH_MALLOC", "").strip().lower() == "system":
        return "SCORCH_MALLOC=system"
    given = [name for name in _USER_SETTINGS if environ.get(name)]
    if given:
        return given[0]
    if "glibc.malloc" in environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES"
    preload = environ.get("LD_PRELOAD", "")
    other = next((name for name in _ALLOCATORS if name in preload), None)
    return f"LD_PRELOAD ({other})" if other else None


def tune() -> bool:
    """Set glibc's thresholds for this process (once); True when they are set."""
    global _done
    if _done is not None:
        return _done
    _done = False
    why = user_choice()
    if why is not None:
        log.debug("allocator left as it is: %s", why)
        return False
    if not _glibc():
        return False
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: glibc's mallopt (find_library forks ldconfig: ms)
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError) as exc:
        log.debug("allocator left as it is: %s", exc)
        return False
    _done = ok
    log.debug("glibc malloc: mmap threshold %d, trim threshold %d (%s)", MMAP_THRESHOLD, TRIM_THRESHOLD, "set" if ok else "refused")
    return ok


SHARDED_MMAP_THRESHOLD = 2**20
SHARDED_TRIM_THRESHOLD = 32 * 2**20


def for_sharding() -> bool:
    """A sharded run on the CPU: blocks of 1 MiB and more get an ``mmap`` of their own again, given
    back when freed. FSDP gathers each unit's parameters into a fresh buffer and frees it after, unit
    after unit, step after step; served from the heap (as :func:`tune` sets it) those buffers leave
    it fragmented, and a rank's resident size grew to twice what it holds (an 86M-parameter MLP of
    21 units on 2 ranks: 2.1 GB against 1.0 GB with this, whose cost is the page faults of those
    buffers: small beside the gathers themselves). Left alone where the user chose (see above)."""
    global _done
    if user_choice() is not None or not _glibc():
        return False
    try:
        libc = ctypes.CDLL(None)
        ok = (libc.mallopt(M_MMAP_THRESHOLD, SHARDED_MMAP_THRESHOLD) == 1
              and libc.mallopt(M_TRIM_THRESHOLD, SHARDED_TRIM_THRESHOLD) == 1)
    except (OSError, AttributeError) as exc:
        log.debug("allocator left as it is: %s", exc)
        return False
    _done = ok
    log.debug("glibc malloc for a sharded run: mmap threshold %d, trim threshold %d", SHARDED_MMAP_THRESHOLD,
              SHARDED_TRIM_THRESHOLD)
    return ok


def _glibc() -> bool:
    """Linux with glibc (``platform.libc_ver`` reads the interpreter's binary to find out: slow)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")  # None: no C library version
    except (AttributeError, ValueError, OSError):
        return False
