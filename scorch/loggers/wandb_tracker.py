"""``--logger wandb``: the run as a Weights & Biases run, offline unless ``WANDB_MODE`` says otherwise, in
the run directory (``RUN_DIR/wandb/offline-run-DATE-ID/run-ID.wandb``; ``wandb sync`` uploads it); wandb
is imported here, only when chosen.

Config: the run's settings (config.json's, nested ones as ``model_settings.KEY``); tags: ``KEY:VALUE`` of
:meth:`Tracker.tags`; history: the history rows at their optimizer step (``epoch`` among them) and the
``--log-every`` points as ``step/...``, on W&B's one step axis; an artifact ``run-files-ID`` at the end:
config.json, history.csv, meta.json (and ``checkpoints/best.pt`` with ``--track-checkpoint``).

A resumed run continues the same W&B run id (in meta.json), ``resume="allow"``: online, the server's run
goes on; offline, each session writes an offline directory of its own under the same id (meta.json's
``trackers.wandb.offline_dirs``, in order), which ``wandb sync RUN_DIR/wandb/offline-run-*`` uploads into
one run (the files of one run id in order of their start). The resumed
session sends no point at or before the last step the run was given (meta.json's ``last_step``, updated at
every history row and at the end): W&B's step only goes forward.
"""
from __future__ import annotations

import os
import secrets
import string
from pathlib import Path
from typing import Any

from ..errors import ScorchError
from .base import Resume
from .tracker import Tracker, flat

MAX_TAG = 64  # characters of a W&B tag


class WandbTracker(Tracker):
    name = "wandb"

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = project
        self.run: Any = None

    def check(self, run_dir: Path, resume: Resume | None) -> None:
        try:
            import wandb  # noqa: F401
        except ImportError as exc:
            raise ScorchError(f"--logger wandb: wandb is not installed ({exc}); install it with "
                              "pip install 'scorch[trackers]'") from exc

    def _start(self, run_id: str | None, params: dict[str, Any], tags: dict[str, str]) -> str:
        import wandb

        assert self.run_dir is not None
        mode: Any = os.environ.get("WANDB_MODE") or "offline"
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, x_disable_meta=True,
                                   x_save_requirements=False)
        self.run = wandb.init(
            project=self.project or os.environ.get("WANDB_PROJECT") or "scorch", name=str(params.get("name") or ""),
            id=run_id or new_id(), resume="allow" if run_id else None, dir=str(self.run_dir),
            mode=mode, config=flat(params, text=False), tags=[f"{k}:{v}"[:MAX_TAG] for k, v in tags.items()], settings=settings,
            reinit="create_new")
        self.state["mode"] = mode
        offline_dir = str(Path(self.run.dir).parent)
        if mode == "offline":
            self.state["offline_dirs"] = [*self.state.get("offline_dirs", []), os.path.relpath(offline_dir, self.run_dir)]
        return str(self.run.id)

    def _log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def _upload(self, files: list[Path], folder: str) -> None:
        assert self.run_dir is not None
        given = os.environ.get("WANDB_DATA_DIR")
        # the artifact's staged copies in the run directory too, not in ~/.local/share/wandb (unless set)
        os.environ["WANDB_DATA_DIR"] = given or str(self.run_dir / "wandb")
        try:
            self._artifact(files, folder)
        finally:
            if given is None:
                os.environ.pop("WANDB_DATA_DIR", None)

    def _artifact(self, files: list[Path], folder: str) -> None:
        import wandb

        artifact = wandb.Artifact(f"{'checkpoint' if folder else 'run-files'}-{self.run.id}",
                                  type="model" if folder else "run-files")
        for path in files:
            artifact.add_file(str(path), name=f"{folder}/{path.name}" if folder else path.name)
        self.run.log_artifact(artifact)

    def _finish(self) -> None:
        self.run.finish(exit_code=0 if self.meta.get("status") in ("finished", "preempted") else 1)
        self.run = None


def new_id() -> str:
    """A W&B run id: 8 lower-case letters and digits, as wandb makes them."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
