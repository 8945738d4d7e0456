"""The checkpoint policy: ``last`` at the end of every epoch, ``best`` when the monitored value
improved (and ``--keep-checkpoints`` newest ones), through :class:`Saver`, which also writes the
checkpoint of a stop in the middle of an epoch."""
from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

from .. import _atomic
from ..errors import ScorchError, TrainingError
from ..rundir import checkpoint
from .base import Callback


class Saver:
    """Built on every rank: every rank takes part in what a checkpoint holds (the strategy's model
    and optimizer state, every rank's RNG state, an unfinished epoch's sums, the callbacks' state);
    rank 0 writes it."""

    def __init__(self, directory: checkpoint.CheckpointDir, run_dir: Any, config: Any, state: checkpoint.TrainingState,
                 strategy: Any, callbacks: Any):
        self.dir, self.run_dir, self.config, self.state = directory, run_dir, config, state
        self.strategy, self.callbacks = strategy, callbacks

    def save(self, run: Any, improved: bool, totals: Any | None) -> None:
        """``totals``: the metric sums of an epoch stopped before its end (a mid-epoch checkpoint,
        which also keeps the epoch's ``run.log`` sums)."""
        backend = self.strategy.backend
        self.callbacks.on_save_checkpoint(run)
        rngs = backend.all_gather_object(checkpoint.rng_state())
        sums = backend.all_gather_object(totals.state_dict()) if totals is not None else None
        scalars = backend.all_gather_object(run.scalars.state_dict()) if totals is not None else None
        callbacks = self.callbacks.state_dict()
        extra = {"rng": rngs, "totals": sums, "scalars": scalars, "callbacks": callbacks, "config": self.config.to_dict()}
        try:
            if self.strategy.sharded:
                self._save_sharded(extra, improved)
            else:
                self._save_file(extra, improved)
        except OSError as exc:
            error = _atomic.write_error(Path(exc.filename) if exc.filename else self.dir.dir / "checkpoint", exc)
            if isinstance(error, ScorchError):
                error = ScorchError(f"cannot write a checkpoint in {self.dir.dir}: {exc.strerror or exc}; "
                                    "the last complete checkpoint is intact")
            raise error from exc
        if backend.rank == 0:
            self.run_dir.proven()

    def _save_file(self, extra: dict[str, Any], improved: bool) -> None:
        try:
            state = self.state.state_dict(self.strategy)
        except checkpoint.NonFiniteWeights as exc:
            self._refuse(str(exc))
        if state is None:  # not rank 0
            return
        state.update(extra)
        self.dir.write(state, self.state.cursor.step, improved)

    def _save_sharded(self, extra: dict[str, Any], improved: bool) -> None:
        backend = self.strategy.backend
        rest = {"format": checkpoint.FORMAT, **self.state.rest_state_dict(), **extra,
                "sharded": {"strategy": self.strategy.name, "world_size": backend.world_size}}
        network, optimizer = self.state.network, self.state.optimizer
        bad = self.dir.write_sharded(backend, lambda path: self.strategy.save_sharded(network, optimizer, path),
                                     rest if backend.rank == 0 else None, self.state.cursor.step, improved)
        if bad:
            self._refuse(", ".join(bad[:3]))

    def _refuse(self, names: str) -> NoReturn:
        cursor = self.state.cursor
        raise TrainingError(f"weights {names} are not finite at epoch {cursor.epoch + 1}, step {cursor.step}; "
                            f"not writing a checkpoint (the last good one stays in {self.dir.dir})") from None


class Checkpointing(Callback):
    """Fires last at the end of an epoch, so the checkpoint holds every other callback's state after it."""

    name = "checkpointing"

    def __init__(self, saver: Saver):
        self.saver = saver

    def on_epoch_end(self, run: Any, row: dict[str, Any]) -> None:
        self.saver.save(run, run.improved, None)
