"""``--logger mlflow``: the run in an MLflow tracking server (``--mlflow-uri``, else ``MLFLOW_TRACKING_URI``,
else, on a resume, the server the run used before), through ``MlflowClient``; mlflow is imported here,
only when chosen.

Params: the run's settings (config.json's, nested ones as ``model_settings.KEY``); a resumed run adds the
settings it did not have and keeps the others (MLflow params cannot change; a changed value is the tag
``resumed.KEY``). Metrics: the history rows at their optimizer step (``epoch`` among them), the
``--log-every`` points as ``step/...``. Tags: :meth:`Tracker.tags`. Artifacts at the end: config.json,
history.csv, meta.json (and ``checkpoints/best.pt`` with ``--track-checkpoint``).

A resumed run continues the same MLflow run (its id in meta.json): it asks the server for the last step it
holds of ``step/lr`` (every --log-every point has it) and of ``epoch`` (every row has it) and sends no point
at or before those, so a stretch that a killed session had logged and the resumed run redoes is not logged
twice (MLflow cannot delete a point: the first session's values stay).

The client's HTTP retries are cut short (2 retries, backoff factor 1, 10 s timeout; the
``MLFLOW_HTTP_REQUEST_*`` variables set otherwise): a server that is gone costs seconds once, not minutes.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..errors import ScorchError
from .base import Resume
from .tracker import Tracker, flat

SETTINGS = {  # set unless set already: retries cut short, and no "View run at" lines on stdout
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
MAX_PARAM = 6000  # characters of a param's value MLflow keeps
STATUS = {"finished": "FINISHED", "failed": "FAILED", "preempted": "KILLED"}


class MLflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, uri: str | None = None, experiment: str | None = None) -> None:
        super().__init__()
        self.uri, self.experiment = uri, experiment
        self.client: Any = None
        self.run_id = ""

    def check(self, run_dir: Path, resume: Resume | None) -> None:
        try:
            import mlflow  # noqa: F401
        except ImportError as exc:
            raise ScorchError(f"--logger mlflow: mlflow is not installed ({exc}); install it with "
                              "pip install 'scorch[trackers]'") from exc
        if not (self.uri or os.environ.get("MLFLOW_TRACKING_URI") or resume is not None):
            raise ScorchError("--logger mlflow: no tracking server; give --mlflow-uri URI or set MLFLOW_TRACKING_URI "
                              "(e.g. http://127.0.0.1:5000)")

    def _tracking_uri(self) -> str:
        uri = self.uri or os.environ.get("MLFLOW_TRACKING_URI") or self.state.get("uri")
        if not uri:
            raise ValueError("no tracking URI: give --mlflow-uri or set MLFLOW_TRACKING_URI")
        return str(uri)

    def _start(self, run_id: str | None, params: dict[str, Any], tags: dict[str, str]) -> str:
        for key, value in SETTINGS.items():
            os.environ.setdefault(key, value)
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        self.client = client = MlflowClient(tracking_uri=self._tracking_uri())
        settings = {k: v[:MAX_PARAM] for k, v in flat(params).items()}
        if run_id is None:
            name = self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "scorch"
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                try:
                    experiment_id = client.create_experiment(name)
                except Exception:  # another run created it meanwhile
                    experiment = client.get_experiment_by_name(name)
                    if experiment is None:
                        raise
                    experiment_id = experiment.experiment_id
            else:
                experiment_id = experiment.experiment_id
            run = client.create_run(experiment_id, run_name=str(params.get("name") or ""), tags=tags)
            self.run_id = run.info.run_id
            kept: dict[str, str] = {}
        else:
            run = client.get_run(run_id)
            self.run_id = run.info.run_id
            client.update_run(self.run_id, status="RUNNING")
            kept = dict(run.data.params)
            changed = {f"resumed.{k}": v for k, v in settings.items() if k in kept and kept[k] != v}
            _batches(client, self.run_id, tags=[RunTag(k, v) for k, v in {**tags, **changed}.items()])
        self.state["experiment_id"] = run.info.experiment_id
        _batches(client, self.run_id, params=[Param(k, v) for k, v in settings.items() if k not in kept])
        return str(self.run_id)

    def _where(self) -> dict[str, Any]:
        return {"uri": self._tracking_uri()}

    def _shown_where(self) -> str:
        return f" at {self._tracking_uri()}"

    def _last_logged(self) -> tuple[int, int]:
        return _last_step(self.client, self.run_id, "step/lr"), _last_step(self.client, self.run_id, "epoch")

    def _log(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        _batches(self.client, self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def _upload(self, files: list[Path], folder: str) -> None:
        for path in files:
            self.client.log_artifact(self.run_id, str(path), artifact_path=folder or None)

    def _finish(self) -> None:
        self.client.set_terminated(self.run_id, status=STATUS.get(str(self.meta.get("status")), "FINISHED"))


def _batches(client: Any, run_id: str, **items: list[Any]) -> None:
    """``log_batch`` within MLflow's limits (100 params or tags, 1000 metrics a call)."""
    for kind, values in items.items():
        size = 1000 if kind == "metrics" else 100
        for i in range(0, len(values), size):
            client.log_batch(run_id, **{kind: values[i:i + size]})


def _last_step(client: Any, run_id: str, key: str) -> int:
    history = client.get_metric_history(run_id, key)
    return max((int(m.step) for m in history), default=-1)
