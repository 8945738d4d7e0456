"""--logger mlflow and --logger wandb: against a real MLflow tracking server (SQLite backend store, on
loopback, started here and stopped after) read back with MlflowClient, and a real W&B offline run read
back with wandb's own reader of the .wandb format (``wandb leet inspect --json``); one tracker run across a
mid-epoch stop, a resume that redoes steps the tracker already holds (a session killed after its
checkpoint), and a server that is killed mid-run (training goes on, meta.json says what was lost)."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from scorch.cli.train import main
from tests.helpers import BIN, DATASET, FIXTURES, base_args, scorch_train

pytest.importorskip("mlflow")
pytest.importorskip("wandb")

MODEL = str(FIXTURES / "tracker_model.py")
# blobs: 64 training samples, 16 per step: 4 steps an epoch, 12 in 3 epochs


def args(root: Path, name: str, *extra: str) -> list[str]:
    return base_args(root, name, "--epochs", "3", "--batch-size", "16", "--lr", "0.05", "--log-every", "1", *extra,
                     model=MODEL, dataset=DATASET)


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def tb_steps(run_dir: Path, tag: str = "step/train/loss") -> list[int]:
    acc = EventAccumulator(str(run_dir / "tensorboard" / "steps"), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def meta(run_dir: Path) -> dict:
    return json.loads((run_dir / "meta.json").read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``mlflow server`` on 127.0.0.1 with a SQLite backend store and its own artifact store."""

    def __init__(self, root: Path):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        self.log = open(root / "server.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1"], stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=root)
        self.root = root

    def wait(self) -> Server:
        """Until the server answers (the event), at most 180 s."""
        deadline = time.monotonic() + 180
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"mlflow server did not start:\n{(self.root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module", autouse=True)
def booting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server starts with the module's first test (it takes a while), stopped after the last."""
    s = Server(tmp_path_factory.mktemp("mlflow"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def server(booting: Server) -> Server:
    return booting.wait()


def wandb_records(offline_dir: Path) -> list[dict]:
    """The records of an offline run's .wandb file, read by wandb itself."""
    (log,) = offline_dir.glob("run-*.wandb")
    out = subprocess.run([str(BIN / "wandb"), "leet", "inspect", "--json", str(log)], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "WANDB_MODE": "offline"})
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_wandb_offline_one_run_id_across_a_max_restarts_restart(tmp_path: Path) -> None:
    """A rank fails after step 6 (epoch 2); --max-restarts restarts it from the checkpoint of step 4 (an
    --auto-resume): it trains steps 5 and 6 again, which the W&B run already holds."""
    run_dir = tmp_path / "w"
    proc = scorch_train(args(tmp_path, "w", "--logger", "tensorboard,csv,wandb", "--checkpoint-every", "2",
                             "--wandb-project", "tests", "--max-restarts", "1"), timeout=240,
                        extra_env={"WANDB_MODE": "offline", "SCORCH_TEST_FAIL_AT_STEP": "6"})
    assert proc.returncode == 0, proc.stderr
    assert "restart 1 of 1" in proc.stderr and "test failure after step 6" in proc.stderr
    assert [s["status"] for s in meta(run_dir)["sessions"]] == ["failed", "finished"]
    tracked = meta(run_dir)["trackers"]["wandb"]
    assert tracked["mode"] == "offline" and len(tracked["offline_dirs"]) == 2

    steps: list[int] = []
    for i, rel in enumerate(tracked["offline_dirs"]):
        records = wandb_records(run_dir / rel)
        (run,) = [r["run"] for r in records if r["type"] == "run"]
        assert run["run_id"] == tracked["run_id"] and run["project"] == "tests"
        config = run["config"]["update"]
        assert config["lr"] == 0.05 and config["batch_size"] == 16
        assert "world_size:1" in run["tags"] and "strategy:single" in run["tags"]
        items = [r["history"]["item"] for r in records if r["type"] == "history"]
        steps += [int(item["_step"]) for item in items if "step/train/loss" in item]
        ended = [r for r in records if r["type"] == "exit"]
        assert ended and ended[0]["exit"].get("exit_code", 0) == (1 if i == 0 else 0)  # the failed session: 1
        artifacts = [r["artifact"] for r in records if r["type"] == "artifact"]
        assert [sorted(c["path"] for c in a["manifest"]["contents"]) for a in artifacts] == \
            [["config.json", "history.csv", "meta.json"]]
        if i == 1:
            last = items[-1]
            history = rows(run_dir)
            assert last["_step"] == 12 and last["train/loss"] == pytest.approx(float(history[-1]["train/loss"]))
    assert steps == list(range(1, 13))  # in order, none twice, over both sessions' files


def test_a_tracker_without_a_server_or_package_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(args(tmp_path, "n", "--logger", "mlflow")) == 2
    assert "--logger mlflow: no tracking server; give --mlflow-uri URI or set MLFLOW_TRACKING_URI" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()


def test_help_imports_no_tracker() -> None:
    code = "import sys; from scorch.cli.train import main\ntry:\n main(['--help'])\nexcept SystemExit: pass\n" \
           "assert 'mlflow' not in sys.modules and 'wandb' not in sys.modules, 'imported'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--mlflow-uri" in out.stdout and "--track-checkpoint" in out.stdout


def redo_from_step_4(run_dir: Path) -> None:
    """Make the run look like a session killed after its checkpoint at step 4 had logged steps 5 and 6: the
    checkpoint of step 6 goes, step 4's is last.pt again (so the resume redoes steps 5 and 6)."""
    ckpt = run_dir / "checkpoints"
    shutil.copy(ckpt / "step-000000004.pt", ckpt / "last.pt")
    (ckpt / "step-000000006.pt").unlink()


def test_mlflow_one_run_across_a_stop_and_a_redone_stretch(tmp_path: Path, server: Server,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = tmp_path / "r"
    common = args(tmp_path, "r", "--logger", "tensorboard,csv,mlflow", "--checkpoint-every", "2",
                  "--keep-checkpoints", "3")
    monkeypatch.setenv("SCORCH_TEST_STOP_AT_STEP", "6")  # mid-epoch 2
    assert main([*common, "--mlflow-uri", server.uri, "--mlflow-experiment", "tests"]) == 3
    monkeypatch.delenv("SCORCH_TEST_STOP_AT_STEP")
    first = meta(run_dir)["trackers"]["mlflow"]
    assert first["uri"] == server.uri and first["last_step"] == 6
    redo_from_step_4(run_dir)
    # the resume finds the server in the run (config.json; no flag, no MLFLOW_TRACKING_URI)
    assert main([*common, "--resume", "--track-checkpoint"]) == 0
    tracked = meta(run_dir)["trackers"]["mlflow"]
    assert tracked["run_id"] == first["run_id"] and "error" not in tracked

    client = MlflowClient(tracking_uri=server.uri)
    run = client.get_run(tracked["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "r"
    assert client.get_experiment(run.info.experiment_id).name == "tests"
    assert len(client.search_runs([run.info.experiment_id])) == 1  # one MLflow run for the scorch run
    params = run.data.params
    assert params["lr"] == "0.05" and params["batch_size"] == "16" and params["epochs"] == "3"
    assert params["model"] == MODEL and params["logger"] == "tensorboard,csv,mlflow"
    tags = run.data.tags
    assert tags["host"] == socket.gethostname() and tags["world_size"] == "1"
    assert tags["backend"] == "torch" and tags["strategy"] == "single"
    assert len(tags["git_commit"]) == 40  # the model file is in this repository
    assert tags["resumed.track_checkpoint"] == "true"  # a setting the resume changed (params cannot change)

    points = client.get_metric_history(run.info.run_id, "step/train/loss")
    assert sorted(p.step for p in points) == list(range(1, 13))  # steps 5 and 6, redone, not sent twice
    history = rows(run_dir)
    assert [int(r["step"]) for r in history] == [4, 8, 12]
    for key in ("train/loss", "valid/loss", "valid/accuracy", "epoch"):
        got = sorted((p.step, p.value) for p in client.get_metric_history(run.info.run_id, key))
        assert got == [(int(r["step"]), pytest.approx(float(r[key]), rel=1e-6)) for r in history], key
    assert tb_steps(run_dir) == list(range(1, 13))  # TensorBoard purged the redone steps

    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "history.csv", "meta.json", "checkpoints"} <= files
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/best.pt"]
    local = Path(client.download_artifacts(run.info.run_id, "meta.json", str(tmp_path)))
    uploaded = json.loads(local.read_text())
    assert uploaded["status"] == "finished" and uploaded["trackers"]["mlflow"]["run_id"] == run.info.run_id
    assert Path(client.download_artifacts(run.info.run_id, "history.csv", str(tmp_path))).read_text() == \
        (run_dir / "history.csv").read_text()


def test_a_server_killed_mid_run_costs_one_warning_and_nothing_else(tmp_path: Path, server: Server,
                                                                   capsys: pytest.MonkeyPatch,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Last in this file: it kills the module's server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    monkeypatch.setenv("SCORCH_TEST_KILL_SERVER", f"{server.proc.pid}:{server.port}:5")
    run_dir = tmp_path / "k"
    assert main(args(tmp_path, "k", "--logger", "tensorboard,csv,mlflow")) == 0
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    warnings = [line for line in err.splitlines() if "training goes on" in line]
    assert len(warnings) == 1 and warnings[0].startswith("scorch: mlflow: "), err
    assert "from step 5" in warnings[0]  # killed after step 5, before the step log sent it
    assert not [line for line in err.splitlines() if "Retrying" in line or "urllib3" in line], err  # the client's own
    assert [int(r["epoch"]) for r in rows(run_dir)] == [1, 2, 3]  # history.csv complete
    assert tb_steps(run_dir) == list(range(1, 13))  # TensorBoard complete
    tracked = meta(run_dir)["trackers"]["mlflow"]
    assert tracked["lost_from_step"] == 5 and tracked["lost_from_epoch"] == 2 and tracked["error"]
    assert tracked["run_id"] and meta(run_dir)["status"] == "finished"
