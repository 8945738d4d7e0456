"""Every distributed question, answered in one place, whichever backend runs.

User model and dataset files may import this module too::

    from scorch import distributed as dist
    if dist.is_rank0(): ...
    total = dist.all_reduce(torch.tensor(n))

Before :func:`init` (or in a plain single process) every function answers for a
single process: rank 0 of 1, and collectives return their input. Collectives
must be called by every rank, in the same order; never behind a rank check.
"""
from __future__ import annotations

import atexit
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import torch

from .. import launch as _launch
from ..errors import DistributedError, ScorchError, on_every_rank
from ..launch.mpirun import finalize_mpi
from .backends.base import Backend
from .backends.horovod import HorovodBackend
from .backends.torch_dist import TorchBackend


def _single_process() -> Backend:
    return Backend(_launch.LaunchInfo("none", 0, 1, 0, 1, 0), torch.device("cpu"))


_backend: Backend = _single_process()


def choose_backend(requested: str, environment: _launch.LaunchEnvironment,
                   device: torch.device | None = None) -> tuple[str, str]:
    """The backend and why, e.g. ``("horovod", "started by mpirun")``.

    ``auto`` means Horovod under mpirun and horovodrun (the original scorch's engine there), when
    Horovod is importable and built for ``device`` (NCCL on a GPU), unless SCORCH_BACKEND says
    otherwise; torch.distributed everywhere else, and where Horovod cannot run (the reason says
    why). Rank 0 decides and the environment gives every rank its answer (over MPI), so that ranks
    on other nodes cannot choose differently."""
    if requested != "auto":
        return requested, f"--backend {requested}"
    choice = environment.auto_backend()
    if choice[0] == "horovod":
        choice = ("torch", "") if environment.rank != 0 else _horovod_verdict(choice[1], device or torch.device("cpu"))
        choice = tuple(environment.agree(choice))
    return choice[0], choice[1]


def _horovod_verdict(why: str, device: torch.device) -> tuple[str, str]:
    """Horovod, or torch.distributed when this process cannot run Horovod on ``device``."""
    try:
        import horovod.torch as hvd  # heavy and optional: only when auto would pick it
    except Exception as exc:  # ImportError, or a library that does not load (OSError)
        return "torch", f"{why}, but Horovod is not importable ({type(exc).__name__}: {exc})"
    if not (hvd.mpi_built() or hvd.gloo_built()):
        return "torch", f"{why}, but this Horovod was built without MPI or Gloo"
    if device.type == "cuda" and not hvd.nccl_built():
        return "torch", f"{why}, but this Horovod was built without NCCL, which a GPU run needs"
    if device.type == "cpu":
        return "horovod", f"{why}, Horovod importable; {HOROVOD_ON_CPU}"
    return "horovod", f"{why}, Horovod importable"


# What the start line says when auto picks Horovod for a CPU run (docs/benchmarks.md, section 2).
HOROVOD_ON_CPU = ("on CPU it needs spare cores: measured up to 2x slower than torch.distributed on a busy 2-core "
                  "machine, a tenth at worst; --backend torch chooses torch.distributed")


def resolve_device(requested: str, local_rank: int) -> torch.device:
    """``auto``: one GPU per local rank when CUDA is there, else the CPU."""
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ScorchError("--device cuda: no CUDA device is visible to this process (torch.cuda.is_available() is "
                          "False); use --device cpu or auto")
    index = local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def _share_cpu_threads(launch: _launch.LaunchInfo, dev: torch.device) -> str:
    """Ranks sharing a machine split its cores, unless the user chose (OMP_NUM_THREADS); returns the
    thread count and why, for the start line."""
    given = os.environ.get("OMP_NUM_THREADS")
    if given is not None:
        why = f"OMP_NUM_THREADS={given}"
    elif dev.type != "cpu" or launch.local_world_size <= 1:
        why = "torch's default; OMP_NUM_THREADS sets it"
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, cores // launch.local_world_size))
        why = f"{cores} core{'s' if cores != 1 else ''} / {launch.local_world_size} ranks on this node; OMP_NUM_THREADS sets it"
    threads = torch.get_num_threads()
    return f"{threads} CPU thread{'s' if threads != 1 else ''} ({why})"


def init(backend: str = "auto", device: str = "auto", timeout_s: float = 1800.0, join_timeout_s: float = 600.0,
         why: str | None = None) -> Backend:
    """Start the process group for this launch; idempotent within a process. ``join_timeout_s``:
    how long the ranks wait for each other to arrive; ``timeout_s``: for each collective; ``why``:
    the reason for a ``backend`` the caller chose (the log says it)."""
    global _backend
    if _backend.name != "none":
        return _backend
    environment = _launch.detect()
    launch = environment.info
    environment.follow_launcher()
    dev = resolve_device(device, launch.local_rank)
    name, reason = choose_backend(backend, environment, dev)
    threads = _share_cpu_threads(launch, dev)
    if name == "horovod":
        _backend = HorovodBackend(launch, dev)
    elif launch.world_size > 1:
        _backend = TorchBackend(launch, dev, environment.rendezvous(), timeout_s=timeout_s, join_timeout_s=join_timeout_s)
        environment.close_channel()
    else:
        _backend = Backend(launch, dev)
        _backend.name = "torch"
    _backend.reason = reason if why is None else why
    _backend.threads = threads
    return _backend


def shutdown() -> None:
    """Tear the process group down; afterwards the module answers for a single process again."""
    global _backend
    _backend.shutdown()
    _backend = _single_process()


def leave() -> None:
    """For a process that ends right after a successful run: every rank waits for the others and
    background work stops (Horovod's thread), but nothing is torn down; end with
    :func:`exit_process`."""
    global _backend
    _backend.leave()
    _backend = _single_process()


def exit_process(code: int, clean: bool | None = None) -> NoReturn:
    """End this process now with ``code``, skipping the interpreter's teardown, so that the C++
    destructors of gloo, NCCL and Horovod run at no moment a peer could race (and a single
    process does not spend a second tearing torch down after its checkpoint is written).

    ``clean`` (default: a success) says every rank ends here together, or that there is no
    peer to wait for: the ``atexit`` handlers run first (the user's files may have registered
    some; logging's flushes every handler), then MPI is finalized if it was initialized (mpirun
    counts a rank that skips MPI_Finalize as failed). Otherwise (a failure of a rank with peers)
    neither runs: either could wait for a rank stuck in a collective, and the launcher must end
    the whole job."""
    if code == 0 if clean is None else clean:
        atexit._run_exitfuncs()
        finalize_mpi()
    else:
        logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def shown_error(exc: BaseException) -> BaseException | None:
    """What this rank prints of ``exc``, an error that ended its command and that no other rank
    raised alike: None when another rank of the job failed first (that rank prints the job's error;
    this rank's collective broke with it, or failed after it); else ``exc``, or, for a collective
    that broke while no rank had reported a failure, a :class:`DistributedError` saying so (a rank
    was killed, or the network failed). A single process, or a rank before the ranks met, prints
    ``exc``."""
    if _backend.world_size == 1:
        return exc
    if not _backend.first_to_fail(exc):
        return None
    broken = _backend.broken_collective(exc)
    if broken is None:
        return exc
    return DistributedError(
        f"a collective with the other ranks broke ({broken}) and no rank had reported an error: a rank ended "
        "without a word (killed? out of memory?) or the network failed; see the launcher's message"
    )


def release_peers() -> None:
    """This rank failed first: make its peers' collectives fail now rather than at their timeout
    (see :meth:`Backend.release_peers`)."""
    _backend.release_peers()


def rank() -> int:
    return _backend.rank


def world_size() -> int:
    return _backend.world_size


def local_rank() -> int:
    return _backend.local_rank


def placement() -> dict[str, Any]:
    """Where this rank runs: its rank, host name, node (when the launcher says) and local rank."""
    return {"rank": rank(), "host": socket.gethostname(), "node": _backend.launch.node_rank, "local_rank": local_rank()}


def is_rank0() -> bool:
    return _backend.rank == 0


def device() -> torch.device:
    return _backend.device


def barrier() -> None:
    _backend.barrier()


def broadcast(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s (picklable) object, on every rank."""
    return _backend.broadcast_object(obj, src)


def decide(compute: Callable[[], Any]) -> Any:
    """Rank 0's ``compute()`` (it reads files, say) on every rank; a ScorchError it raises is raised
    on every rank alike, so that no rank waits in a collective its peers left."""
    outcome: tuple[str, Any] = ("ok", None)
    if _backend.rank == 0:
        try:
            outcome = ("ok", compute())
        except ScorchError as exc:
            outcome = ("error", str(exc))
    kind, value = _backend.broadcast_object(outcome)
    if kind == "error":
        raise on_every_rank(ScorchError(value))  # rank 0 alone prints it
    return value


T = TypeVar("T")


def each(check: Callable[[], T]) -> T:
    """Every rank runs ``check`` (it loads the user's files, say); when it fails on any rank, every
    rank raises the error of the first rank it failed on, and that rank alone prints it."""
    error: ScorchError | None = None
    try:
        result = check()
    except ScorchError as exc:
        error = exc
    errors = all_gather(None if error is None else str(error))
    first = next((r for r, message in enumerate(errors) if message is not None), None)
    if first is not None:
        if error is not None and first == _backend.rank:
            raise on_every_rank(error, first)
        raise on_every_rank(ScorchError(errors[first]), first)
    return result  # no rank failed, this one included: its check returned


def all_gather(obj: Any) -> list[Any]:
    """Every rank's (picklable) object, in rank order, on every rank."""
    return _backend.all_gather_object(obj)


def all_reduce(value: torch.Tensor | float, op: str = "sum") -> Any:
    """Reduce a tensor in place (returned), or a number (a float is returned), over all ranks."""
    if op not in ("sum", "max", "min"):
        raise ValueError(f"all_reduce: op must be sum, max or min, not {op!r}")
    if isinstance(value, torch.Tensor):
        return _backend.all_reduce(value, op)
    t = torch.tensor([float(value)], dtype=torch.float64, device=_backend.device)
    return float(_backend.all_reduce(t, op).item())


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Replace each parameter's gradient by its mean over all ranks, in one all-reduce (a custom
    step's update: scorch.training.custom_step). A parameter without a gradient on a rank counts
    as zero there; one without a gradient on every rank keeps none. Called by every rank, alike."""
    if _backend.world_size == 1 or not params:
        return
    device = params[0].device
    grads = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype, device=device)
             for p in params]
    present = torch.tensor([p.grad is not None for p in params], dtype=grads[0].dtype, device=device)
    flat = torch.cat([*grads, present])
    _backend.all_reduce(flat, "sum")
    flat /= _backend.world_size
    offset = 0
    for p, had in zip(params, flat[-len(params):].tolist()):
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).to(p.dtype, copy=True) if had else None
        offset += n
