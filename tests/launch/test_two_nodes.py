"""Two nodes on one machine, for every launcher: the job forms across them, each node runs its own
local ranks, and 2 nodes x N ranks x B train like 1 rank x 2NB (within 1e-4).

scorch's own launch, torchrun and mpirun run on two simulated hosts (network namespaces with their
own addresses and host names, tests/launch/hosts.py), so the rendezvous and the collectives cross
an interface; srun runs under two slurmd daemons of a private SLURM on this host (both on loopback).
"""
import json
import os
import time

import pytest
import torch

from tests.helpers import BIN, FIXTURES, env, weights
from tests.launch.conftest import GLOBAL_BATCH, train_args
from tests.slurm_fixture import SlurmUnavailable, missing_binaries, start_slurm_nodes, two_node_names

SCORCH = str(BIN / "scorch-train")


def finish(procs, timeout=300):
    """(exit code, stdout, stderr) of each process, in order."""
    deadline = time.monotonic() + timeout
    outs = [p.communicate(timeout=max(1, deadline - time.monotonic())) for p in procs]
    return [(p.returncode, *out) for p, out in zip(procs, outs)]


def check_two_nodes(run_dir, one_rank, ranks_per_node, hostnames=None):
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["world_size"] == 2 * ranks_per_node and meta["nodes"] == 2
    nodes = {}
    for place in meta["ranks"]:  # one entry per rank, in rank order
        nodes.setdefault(place["node"] if place["node"] is not None else place["host"], []).append(place)
    assert len(nodes) == 2
    for places in nodes.values():
        assert sorted(p["local_rank"] for p in places) == list(range(ranks_per_node))
        assert len({p["host"] for p in places}) == 1
    if hostnames is not None:
        assert sorted(places[0]["host"] for places in nodes.values()) == sorted(hostnames)
    one, two = weights(one_rank), weights(run_dir)
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-4, rtol=0), (key, (one[key] - two[key]).abs().max())
    return meta


@pytest.mark.parametrize("per_node, fail_once", [(1, False), (2, True)])
def test_scorch_nnodes_2_on_two_hosts(two_hosts, one_rank, tmp_path, per_node, fail_once):
    # Before: --nnodes 2 --nproc-per-node 1 trained alone on each node (world size 1, launcher none).
    # With fail_once, rank 1 (on node 0) fails in epoch 2: both nodes restart all ranks (--max-restarts).
    a, b = two_hosts
    common = train_args(tmp_path, "job", GLOBAL_BATCH // (2 * per_node), "--nnodes", "2", "--nproc-per-node",
                        str(per_node), "--master-addr", a.addr, "--master-port", "29400", "--join-timeout", "120",
                        *(["--max-restarts", "1"] if fail_once else []), dataset=str(FIXTURES / "flaky_dataset.py"))
    fail = {"SCORCH_TEST_FAIL_AFTER": str(tmp_path / "job" / "checkpoints" / "last.pt"),
            "SCORCH_TEST_FAIL_MARKER": str(tmp_path / "failed-once")} if fail_once else {}
    nodes = [host.start([SCORCH, *common, "--node-rank", str(n)], {**env(), **fail}) for n, host in enumerate(two_hosts)]
    results = finish(nodes)
    assert [code for code, _, _ in results] == [0, 0], results
    meta = check_two_nodes(tmp_path / "job", one_rank, per_node, [a.hostname, b.hostname])
    assert meta["launcher"] == "torchrun"
    world = 2 * per_node
    for (_, _, err), host in zip(results, two_hosts):
        assert f"starting {world} ranks on 2 nodes" in err
        assert f"ranks talk to the other nodes over {host.ifname}" in err  # the names do not resolve
        restarts = [line for line in err.splitlines() if "restart 1 of 1" in line]
        assert restarts == (["scorch: rank 1 (exit code 2) failed on node 0; restart 1 of 1: every rank starts "
                             "again from the last checkpoint"] if fail_once else [])
    if fail_once:
        assert len(meta["sessions"]) == 2 and meta["resumed_from_epoch"] == 1


def test_hsdp_shards_within_each_node_and_replicates_across_them(two_hosts, one_rank, tmp_path):
    # 2 nodes x 2 ranks: each node's ranks hold half of every parameter (sharded over the node),
    # the two nodes a replica each; the run equals 1 rank x the global batch within 1e-4, and its
    # sharded checkpoint (each rank's shards) resumes on 1 rank.
    a, _ = two_hosts
    common = train_args(tmp_path, "hsdp", GLOBAL_BATCH // 4, "--nnodes", "2", "--nproc-per-node", "2", "--master-addr",
                        a.addr, "--master-port", "29402", "--join-timeout", "120", "--strategy", "hsdp")
    results = finish([host.start([SCORCH, *common, "--node-rank", str(n)], env()) for n, host in enumerate(two_hosts)])
    assert [code for code, _, _ in results] == [0, 0], results
    check_two_nodes(tmp_path / "hsdp", one_rank, 2)
    shards = sorted(p.name for p in (tmp_path / "hsdp" / "checkpoints" / "last.dcp").glob("*.distcp"))
    assert len(shards) == 4, shards  # every rank wrote its own
    assert "strategy hsdp" in results[0][2]


def test_torchrun_two_agents_c10d(two_hosts, one_rank, tmp_path):
    a, _ = two_hosts
    agents = []
    for n, host in enumerate(two_hosts):
        # As on a cluster whose host names do not resolve: the agents' own address, which agent
        # hosts the c10d store, and the interface for gloo are given.
        cmd = [str(BIN / "torchrun"), "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
               "--rdzv-endpoint", f"{a.addr}:29401", "--rdzv-id", "two-agents", "--local-addr", host.addr,
               "--rdzv-conf", f"is_host={int(n == 0)}", "--no-python", SCORCH,
               *train_args(tmp_path, "job", GLOBAL_BATCH // 2)]
        agents.append(host.start(cmd, {**env(), "GLOO_SOCKET_IFNAME": host.ifname}))
    results = finish(agents)
    assert [code for code, _, _ in results] == [0, 0], results
    meta = check_two_nodes(tmp_path / "job", one_rank, 1, [h.hostname for h in two_hosts])
    assert meta["launcher"] == "torchrun"


@pytest.mark.mpi
@pytest.mark.parametrize("backend, expected", [("auto", "horovod"), ("torch", "torch")])  # Horovod is mpirun's default
def test_mpirun_two_hosts_through_a_local_launch_agent(two_hosts, one_rank, tmp_path, backend, expected):
    a, b = two_hosts
    # Open MPI starts its daemon on the second host with "AGENT HOST COMMAND": run it inside host b.
    agent = tmp_path / "rsh-into-host-b"
    agent.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = "{b.addr}" ] || {{ echo "unknown host $1" >&2; exit 255; }}\n'
        "shift\n"
        f"exec ip netns exec {b.netns} unshare --uts sh -c 'hostname \"$0\" && exec sh -c \"$1\"' {b.hostname} \"$*\"\n"
    )
    agent.chmod(0o755)
    subnet = a.addr.rsplit(".", 1)[0] + ".0/24"
    cmd = ["mpirun", "-np", "2", "--host", f"{a.addr}:1,{b.addr}:1", "--mca", "plm_rsh_agent", str(agent),
           "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", subnet, "--mca", "oob_tcp_if_include", subnet,
           "--bind-to", "none", "-x", "PATH", "-x", "PYTHONUNBUFFERED",
           SCORCH, *train_args(tmp_path, "job", GLOBAL_BATCH // 2, "--backend", backend)]
    [(code, _, err)] = finish([a.start(cmd, env())])
    assert code == 0, err
    meta = check_two_nodes(tmp_path / "job", one_rank, 1, [a.hostname, b.hostname])
    assert (meta["launcher"], meta["backend"]) == ("mpirun", expected)


@pytest.fixture(scope="module")
def slurm_two_nodes(tmp_path_factory):
    """A private SLURM with two slurmd daemons on this host (tests/slurm_fixture.py)."""
    missing = missing_binaries()
    if missing:
        reason = f"SLURM is not installed ({', '.join(missing)} missing); run: bash scripts/setup_slurm.sh"
        if os.environ.get("CI") or os.environ.get("SCORCH_REQUIRE_SLURM"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        with start_slurm_nodes(tmp_path_factory.mktemp("slurm2"), two_node_names()) as cluster:
            yield cluster
    except SlurmUnavailable as exc:  # pragma: no cover - checked above
        pytest.skip(str(exc))


def test_srun_over_two_slurmd(slurm_two_nodes, one_rank, tmp_path):
    cmd = ["srun", "--nodes", "2", "--ntasks-per-node", "1", "--kill-on-bad-exit=1", SCORCH,
           *train_args(tmp_path, "job", GLOBAL_BATCH // 2)]
    out = slurm_two_nodes.run(cmd, check=False, timeout=300)
    assert out.returncode == 0, out.stderr + slurm_two_nodes.log_tail()
    meta = check_two_nodes(tmp_path / "job", one_rank, 1)
    assert meta["launcher"] == "srun" and [p["node"] for p in meta["ranks"]] == [0, 1]
