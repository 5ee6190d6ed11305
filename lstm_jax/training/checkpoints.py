"""Checkpoints of the train state with Orbax: save every N steps and at the end, keep the last K,
resume from the latest.

Resuming is exact: a checkpoint holds the whole ``TrainState`` (parameters, optimiser moments,
step and PRNG key) bit for bit, so a run stopped at step N and restored continues with the
numbers an uninterrupted run would have produced, provided batch ``s`` depends only on ``s``
(see ``training.loop``).

The directory holds one sub-folder per saved step, managed by ``orbax.checkpoint
.CheckpointManager``; restoring needs a *target* state (any state of the same structure, e.g.
the freshly initialised one) to know the shapes, dtypes and shardings to restore into.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from lstm_jax.training.state import TrainState


class Checkpointer:
    """Saves and restores ``TrainState`` checkpoints in one directory.

    Args:
      directory: where checkpoints live; created if missing.
      save_every: save when ``state.step`` is a multiple of this (``maybe_save``); 0 saves
        only when forced (at the end of a run).
      keep: how many of the most recent checkpoints to keep (older ones are deleted).
      async_save: write in a background thread (training continues while the checkpoint is
        written); ``wait`` blocks until it is on disk.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        save_every: int = 1000,
        keep: int = 3,
        async_save: bool = False,
    ) -> None:
        fn = "Checkpointer"
        if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 0:
            raise ValueError(f"{fn}: save_every must be an int >= 0, got {save_every!r}")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"{fn}: keep must be an int >= 1, got {keep!r}")
        self.directory = os.path.abspath(os.fspath(directory))
        self.save_every = save_every
        self.keep = keep
        # The save cadence is decided here (maybe_save), not by Orbax's save_interval_steps, so
        # "at the end" saves are never skipped for falling between two intervals.
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=async_save
            ),
        )

    def all_steps(self) -> list[int]:
        """The steps with a checkpoint on disk, ascending."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest saved step, or None if there is none."""
        return self._manager.latest_step()

    def save(self, state: TrainState) -> int:
        """Saves ``state`` under its own step (no-op if that step is already saved)."""
        _check_state("Checkpointer.save", state)
        step = int(jax.device_get(state.step))
        if step not in self._manager.all_steps():
            self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
        return step

    def maybe_save(self, state: TrainState) -> bool:
        """Saves if ``state.step`` is a positive multiple of ``save_every``."""
        step = int(jax.device_get(state.step))
        if self.save_every and step > 0 and step % self.save_every == 0:
            self.save(state)
            return True
        return False

    def restore(self, target: TrainState, step: int | None = None) -> TrainState:
        """Restores the checkpoint at ``step`` (the latest when None) into ``target``'s structure,
        shapes, dtypes and shardings.

        Raises:
          FileNotFoundError: no checkpoint (at that step) in the directory.
        """
        fn = "Checkpointer.restore"
        _check_state(fn, target, "target")
        self.wait()
        if step is None:
            step = self.latest_step()
            if step is None:
                raise FileNotFoundError(f"{fn}: no checkpoint in {self.directory}")
        elif step not in self._manager.all_steps():
            raise FileNotFoundError(
                f"{fn}: no checkpoint for step {step} in {self.directory}; saved steps are "
                f"{self.all_steps()}"
            )
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
        restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        return TrainState(*restored)

    def wait(self) -> None:
        """Blocks until any background save has finished."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Finishes pending saves and releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _check_state(fn: str, state: Any, name: str = "state") -> None:
    if not isinstance(state, TrainState):
        raise TypeError(f"{fn}: {name} must be a TrainState, got {type(state).__name__}")
