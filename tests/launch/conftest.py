"""Fixtures for multi-node tests: two simulated hosts, and the one-rank run they must equal."""
import os

import pytest

from scorch.cli.train import main
from tests.helpers import base_args
from tests.launch import hosts

# Every two-node run trains 2 epochs with 16 samples per optimizer step in all (2 x 1 x 8, 2 x 2 x 4).
EPOCHS, GLOBAL_BATCH, LR = "2", 16, "0.05"


def train_args(run_root, name, batch, *extra, **files):
    return base_args(run_root, name, "--epochs", EPOCHS, "--batch-size", str(batch), "--lr", LR, *extra, **files)


@pytest.fixture
def two_hosts():
    """Two network namespaces joined by a veth pair (tests/launch/hosts.py), removed afterwards."""
    why = hosts.available()
    if why:
        if os.environ.get("CI") or os.environ.get("SCORCH_REQUIRE_NETNS"):
            pytest.fail(f"cannot simulate two hosts: {why}")
        pytest.skip(f"cannot simulate two hosts: {why}")
    with hosts.two_hosts() as pair:
        yield pair


@pytest.fixture(scope="session")
def one_rank(tmp_path_factory):
    """1 rank with the whole global batch: what every two-node run must equal (within 1e-4)."""
    root = tmp_path_factory.mktemp("one-rank")
    assert main(train_args(root, "one", GLOBAL_BATCH)) == 0
    return root / "one"
