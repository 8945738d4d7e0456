"""The checks' tensors are tiny: one thread each is faster than two fighting over 2 cores (and other tests)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # for the processes these tests start


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
