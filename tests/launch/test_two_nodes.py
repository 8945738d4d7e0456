"""Two nodes on one machine: scorch's own --nnodes 2 --node-rank 0/1, as two process groups."""
import json
import subprocess

import torch

from scorch.cli.train import main
from scorch.launch import free_port
from tests.helpers import BIN, base_args, env, weights


def test_two_nodes_of_two_ranks_on_localhost(tmp_path):
    port = str(free_port())
    common = ["--nnodes", "2", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", port,
              "--epochs", "2", "--batch-size", "4", "--lr", "0.05"]
    nodes = [subprocess.Popen([str(BIN / "scorch-train"), *base_args(tmp_path, "two-nodes", *common, "--node-rank", str(n))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()) for n in (0, 1)]
    outs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outs
    meta = json.loads((tmp_path / "two-nodes" / "meta.json").read_text())
    assert meta["world_size"] == 4
    assert main(base_args(tmp_path, "one", "--epochs", "2", "--batch-size", "16", "--lr", "0.05")) == 0
    one, four = weights(tmp_path / "one"), weights(tmp_path / "two-nodes")
    for key in one:
        assert torch.allclose(one[key], four[key], atol=1e-4, rtol=0), (key, (one[key] - four[key]).abs().max())
