"""--compile: ``torch.compile`` of the user's Network, in place.

``Network.compile()`` (not ``torch.compile(network)``) keeps the module itself, so its
``state_dict`` keys stay the Network's own (no ``_orig_mod.`` prefix: checkpoints load with and
without --compile), ``Socket.trainable_modules`` still name its parameters, and DDP and Horovod
see the same parameters as without it.

Each batch shape is compiled once and kept (``dynamic=False``): a run's last, shorter batch gets
its own graph instead of turning the full batches' graph into a dynamic one part-way through the
run, which would give a resumed run other kernels than the uninterrupted one (resume is exact with
--compile because of this). Networks whose inputs change shape at every batch recompile up to
torch's limit (``torch._dynamo.config.recompile_limit``, 8) and then run eagerly.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from ..errors import ScorchError

log = logging.getLogger(__name__)

# The two phases of a compile in torch's own timings: tracing and compiling a forward graph, and
# (lazily, at the first backward) compiling its backward graph.
_TIMERS = ("_compile.compile_inner", "backward._backward_impl")


def check(device: torch.device) -> None:
    """One line, before anything is written, when torch.compile cannot run here."""
    import torch._dynamo  # here, not at the top: it takes about a second to import, and only --compile needs it

    if not torch._dynamo.is_dynamo_supported():
        raise ScorchError(f"--compile: torch {torch.__version__} cannot compile on this Python; leave --compile off")
    if device.type == "cpu":
        from torch._inductor import cpp_builder  # inductor: as torch._dynamo above

        try:
            cpp_builder.get_cpp_compiler()
        except Exception as exc:  # inductor's InvalidCxxCompiler, or any failure to run one
            raise ScorchError("--compile: torch.compile (inductor) compiles the Network to C++ on the CPU and found no "
                              "working C++ compiler (set CXX or install g++), or leave --compile off") from exc
    elif device.type == "cuda":
        from torch.utils._triton import has_triton  # imports triton when it is there: only --compile needs it

        if not has_triton():
            raise ScorchError("--compile: torch.compile (inductor) needs Triton on CUDA and it does not import "
                              "(pip install triton, matching torch), or leave --compile off")


class Clock:
    """What this run has compiled: seconds (torch's own timers of tracing and compiling forward and
    backward graphs) and graphs, counted from when :func:`apply` compiled the Network."""

    def __init__(self) -> None:
        self.base_s, self.base_graphs = _seconds(), _graphs()

    def seconds(self) -> float | None:
        now = _seconds()
        return None if now is None else now - (self.base_s or 0.0)

    def graphs(self) -> int:
        return _graphs() - self.base_graphs


def apply(network: torch.nn.Module) -> Clock:
    """Compile ``network``'s calls in place; earlier compiled code of this process is dropped first
    (a second run in the same process compiles afresh, as a new process would)."""
    torch.compiler.reset()
    network.compile(dynamic=False)
    return Clock()


def _seconds() -> float | None:
    try:
        from torch._dynamo.utils import compilation_time_metrics  # only --compile loads torch._dynamo
    except ImportError:
        return None
    return float(sum(sum(compilation_time_metrics.get(name, [])) for name in _TIMERS))


def _graphs() -> int:
    try:
        from torch._dynamo.utils import counters  # only --compile loads torch._dynamo
    except ImportError:
        return 0
    return int(counters["stats"]["unique_graphs"])


@contextlib.contextmanager
def failures(model_path: str, on: bool) -> Iterator[None]:
    """A failure of torch.compile itself (not of the user's code, which it raises as it is) is one
    line that names --compile."""
    if not on:
        yield
        return
    from torch._dynamo.exc import TorchDynamoException  # only --compile loads torch._dynamo

    try:
        yield
    except TorchDynamoException as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ScorchError(f"--compile: torch.compile failed on {model_path}: Network ({first.strip()[:300]}); "
                          "leave --compile off") from exc
