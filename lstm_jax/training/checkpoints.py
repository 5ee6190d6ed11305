"""Checkpoints of the train state with Orbax: save every N steps and at the end, keep the last K,
resume from the newest intact one.

Resuming is exact: a checkpoint holds the whole ``TrainState`` (parameters, optimiser moments,
step and PRNG key) bit for bit, so a run stopped at step N and restored continues with the
numbers an uninterrupted run would have produced, provided batch ``s`` depends only on ``s``
(see ``training.loop``).

The directory holds one sub-folder per saved step, managed by ``orbax.checkpoint
.CheckpointManager``, with two items::

    <step>/state/   the TrainState (``StandardSave``)
    <step>/meta/    JSON: the path, shape, dtype and CRC-32 of every array of the state, and
                    the caller's metadata (a run's configuration, the loop's open log window)
    <step>/lstm_jax_files.json   the size and CRC-32 of every file above, written once the
                    step is on disk

Restoring needs a *target* state (any state of the same structure, e.g. the freshly
initialised one) to know the shapes, dtypes and shardings to restore into. A target that does
not fit the checkpoint is refused with the arrays that differ, before Orbax reads anything.
Before Orbax reads a step, its files are checked against their sizes and CRC-32s (a
truncated file is one clear error, not a TensorStore trace); every restored array is checked
against its own CRC-32, so flipped bytes are an error, not parameters that are silently off.
Asked for the latest checkpoint, ``restore`` falls back to the newest intact one with a
``CorruptCheckpointWarning`` naming each one it skipped.

A state whose parameters hold a NaN or Inf is never saved (``save`` raises): the newest
checkpoint on disk always has finite parameters.

The checks cost one copy of the state to the host per save (Orbax makes one too) and one more
read of the step's files per restore.

In a multi-process run every process calls ``save`` and ``restore`` (Orbax's multi-process
checkpointing: each process writes its shards, process 0 the metadata and the file list, on a
directory every process sees). Replicated arrays are checked by every process; arrays split
across processes are checked through the file list only.
"""

from __future__ import annotations

import json
import os
import warnings
import zlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from lstm_jax.training.state import TrainState

FORMAT = "lstm_jax.training.checkpoint/1"
# The loop keeps its own bookkeeping (the open log window) under this key of the metadata.
LOOP_KEY = "train_loop"
FILES = "lstm_jax_files.json"


class CorruptCheckpointError(ValueError):
    """A checkpoint on disk cannot be read back as it was written (truncated, flipped bytes).

    Attributes:
      step: the checkpoint's step (None when the error is about several).
      reason: what is wrong with it, one line.
    """

    def __init__(self, message: str, step: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.step, self.reason = step, reason or message


class CorruptCheckpointWarning(UserWarning):
    """``Checkpointer.restore`` skipped a corrupted checkpoint and used an older one."""


def _first_line(error: BaseException, limit: int = 240) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _host(x: Any) -> np.ndarray | None:
    """The array on the host; None for one this process cannot see whole (multi-process)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if not x.is_fully_replicated:
            return None
        # Replicated across processes: every local shard is the whole array.
        x = x.addressable_data(0)
    return np.ascontiguousarray(np.asarray(jax.device_get(x)))


def _crc32(host: np.ndarray | None) -> int | None:
    return None if host is None else zlib.crc32(host.tobytes())


def _file_crc32(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return crc


def _list_files(step_dir: str) -> dict[str, dict[str, int]]:
    """``{relative path: {"size", "crc32"}}`` of every file of a step but the list itself."""
    listing = {}
    for root, _, names in os.walk(step_dir):
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, step_dir)
            if not rel.startswith(FILES):
                listing[rel] = {"size": os.path.getsize(path), "crc32": _file_crc32(path)}
    return dict(sorted(listing.items()))


def _describe(shape: Any, dtype: Any) -> str:
    return f"{np.dtype(dtype).name}{list(shape)}"


def _arrays(state: TrainState) -> list[dict[str, Any]]:
    """``[{path, shape, dtype}]`` for every leaf of ``state``, in leaf order."""
    return [
        {
            "path": "state" + jax.tree_util.keystr(path),
            "shape": [int(d) for d in np.shape(x)],
            "dtype": np.dtype(x.dtype).name,
        }
        for path, x in jax.tree_util.tree_leaves_with_path(state)
    ]


def _check_json(fn: str, metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise TypeError(f"{fn}: metadata must be a JSON-able dict, got {type(metadata).__name__}")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: metadata must be JSON-serialisable: {e}") from None


class Checkpointer:
    """Saves and restores ``TrainState`` checkpoints in one directory.

    Args:
      directory: where checkpoints live; created if missing.
      save_every: save when ``state.step`` is a multiple of this (``maybe_save``); 0 saves
        only when forced (at the end of a run).
      keep: how many of the most recent checkpoints to keep (older ones are deleted).
      async_save: write in a background thread (training continues while the checkpoint is
        written); ``wait`` blocks until it is on disk.
      metadata: a JSON-able dict saved with every checkpoint (for example the run's
        configuration); ``metadata(step)`` reads it back.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        save_every: int = 1000,
        keep: int = 3,
        async_save: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        fn = "Checkpointer"
        if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 0:
            raise ValueError(f"{fn}: save_every must be an int >= 0, got {save_every!r}")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"{fn}: keep must be an int >= 1, got {keep!r}")
        _check_json(fn, metadata)
        self.directory = os.path.abspath(os.fspath(directory))
        self.save_every = save_every
        self.keep = keep
        self._async = async_save
        self._metadata = dict(metadata or {})
        # Steps found corrupted by restore: saving that step again replaces them.
        self._corrupt: set[int] = set()
        # Steps saved whose file list is not written yet (an async save still in flight).
        self._unlisted: list[int] = []
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

    def is_due(self, step: int) -> bool:
        """Whether ``maybe_save`` saves at ``step``: a positive multiple of ``save_every``."""
        return bool(self.save_every) and step > 0 and step % self.save_every == 0

    def save(self, state: TrainState, *, metadata: dict[str, Any] | None = None) -> int:
        """Saves ``state`` under its own step (no-op if that step is already saved).

        Args:
          state: the state to save.
          metadata: JSON-able, saved with this step on top of the constructor's metadata.

        Raises:
          TypeError: ``state`` is not a TrainState, or the metadata is not JSON-serialisable
            (checked before anything is written).
          ValueError: a parameter of ``state`` holds a NaN or Inf.
        """
        fn = "Checkpointer.save"
        _check_state(fn, state)
        _check_json(fn, metadata)
        step = int(jax.device_get(state.step))
        if self._unlisted:
            self.wait()  # Orbax would wait for the previous save here anyway
        if step in self._manager.all_steps():
            if step not in self._corrupt:
                return step
            self._manager.delete(step)
        arrays = _arrays(state)
        params = {id(x) for x in jax.tree_util.tree_leaves(state.params)}
        for entry, x in zip(arrays, jax.tree_util.tree_leaves(state), strict=True):
            host = _host(x)
            entry["crc32"] = _crc32(host)
            # Parameters only: an optimiser state may hold an Inf on purpose (a "best so far").
            if host is not None and id(x) in params and np.issubdtype(host.dtype, np.inexact):
                if not np.all(np.isfinite(host)):
                    raise ValueError(
                        f"{fn}: {entry['path']} holds a NaN or Inf at step {step}; a "
                        f"non-finite state is never saved (the newest checkpoint stays the last "
                        f"finite one)"
                    )
        document = {
            "format": FORMAT,
            "step": step,
            "arrays": arrays,
            "metadata": {**self._metadata, **(metadata or {})},
        }
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(document)
            ),
            force=True,
        )
        self._corrupt.discard(step)
        self._unlisted.append(step)
        if not self._async:
            self._list_saved_files()
        return step

    def _step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def _list_saved_files(self) -> None:
        """Writes the file list of every step saved since the last call (once on disk)."""
        self._manager.wait_until_finished()
        steps, self._unlisted = self._unlisted, []
        if jax.process_index() != 0:
            return
        for step in steps:
            step_dir = self._step_dir(step)
            if step not in self._manager.all_steps() or not os.path.isdir(step_dir):
                continue  # already pruned (keep)
            listing = _list_files(step_dir)
            tmp = os.path.join(step_dir, f"{FILES}.tmp")
            with open(tmp, "w") as f:
                json.dump({"format": FORMAT, "files": listing}, f)
            os.replace(tmp, os.path.join(step_dir, FILES))

    def _check_files(self, fn: str, step: int) -> None:
        """Compares a step's files with its file list (when it has one)."""
        step_dir = self._step_dir(step)
        path = os.path.join(step_dir, FILES)
        if not os.path.exists(path):
            return  # killed before the list was written: the arrays' own CRC-32s still hold
        try:
            with open(path) as f:
                listed = json.load(f)["files"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            reason = f"{FILES} cannot be read: {_first_line(e)}"
            raise _corrupt(fn, step, self.directory, reason) from e
        for rel, want in listed.items():
            file = os.path.join(step_dir, rel)
            if not os.path.isfile(file):
                raise _corrupt(fn, step, self.directory, f"{rel} is missing")
            size = os.path.getsize(file)
            if size != want["size"]:
                reason = f"{rel} has {size} bytes, {want['size']} were written (truncated?)"
                raise _corrupt(fn, step, self.directory, reason)
            if _file_crc32(file) != want["crc32"]:
                raise _corrupt(fn, step, self.directory, f"{rel} does not match its CRC-32")

    def maybe_save(self, state: TrainState, *, metadata: dict[str, Any] | None = None) -> bool:
        """Saves if ``state.step`` is a positive multiple of ``save_every``."""
        if self.is_due(int(jax.device_get(state.step))):
            self.save(state, metadata=metadata)
            return True
        return False

    def metadata(self, step: int | None = None) -> dict[str, Any] | None:
        """The metadata saved with ``step``; with ``step=None``, that of the newest checkpoint
        whose metadata can be read. None when there is no such checkpoint.

        Raises:
          CorruptCheckpointError: ``step``'s metadata cannot be read.
        """
        fn = "Checkpointer.metadata"
        self.wait()
        if step is not None:
            if step not in self._manager.all_steps():
                return None
            return self._document(fn, step)["metadata"]
        for s in reversed(self.all_steps()):
            try:
                return self._document(fn, s)["metadata"]
            except CorruptCheckpointError:
                continue
        return None

    def restore(self, target: TrainState, step: int | None = None) -> TrainState:
        """Restores the checkpoint at ``step`` into ``target``'s structure, shapes, dtypes and
        shardings; with ``step=None``, the newest intact checkpoint (warning with a
        ``CorruptCheckpointWarning`` for each newer one that is corrupted).

        Raises:
          FileNotFoundError: no checkpoint (at that step) in the directory.
          ValueError: ``target`` does not fit the checkpoint (the message lists the arrays
            whose shapes or paths differ).
          CorruptCheckpointError: the checkpoint at ``step`` is corrupted, or (``step=None``)
            none is intact.
        """
        fn = "Checkpointer.restore"
        _check_state(fn, target, "target")
        self.wait()
        steps = self.all_steps()
        if step is not None:
            if step not in steps:
                raise FileNotFoundError(
                    f"{fn}: no checkpoint for step {step} in {self.directory}; saved steps are "
                    f"{steps}"
                )
            return self._restore_step(fn, target, step)
        if not steps:
            raise FileNotFoundError(f"{fn}: no checkpoint in {self.directory}")
        failures = []
        for i, s in enumerate(reversed(steps)):
            try:
                return self._restore_step(fn, target, s)
            except CorruptCheckpointError as e:
                self._corrupt.add(s)
                failures.append(f"step {s}: {e.reason}")
                older = steps[len(steps) - 2 - i] if i + 1 < len(steps) else None
                then = f"trying step {older}" if older is not None else "no older checkpoint"
                bad = os.path.join(self.directory, str(s))
                warnings.warn(
                    f"{fn}: skipping the corrupted checkpoint {bad} ({e.reason}); {then}",
                    CorruptCheckpointWarning,
                    stacklevel=2,
                )
        raise CorruptCheckpointError(
            f"{fn}: no intact checkpoint in {self.directory} ({'; '.join(failures)})"
        )

    def _document(self, fn: str, step: int) -> dict[str, Any]:
        step_dir = self._step_dir(step)
        if os.path.isdir(os.path.join(step_dir, "default")) and not os.path.isdir(
            os.path.join(step_dir, "meta")
        ):
            reason = f"it was written in an older layout, without the {FORMAT!r} metadata"
            raise _corrupt(fn, step, self.directory, reason)
        try:
            document = self._manager.restore(
                step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
            )["meta"]
        except Exception as e:
            reason = f"its metadata cannot be read: {_first_line(e)}"
            raise _corrupt(fn, step, self.directory, reason) from e
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise _corrupt(fn, step, self.directory, f"its metadata is not in format {FORMAT!r}")
        return document

    def _restore_step(self, fn: str, target: TrainState, step: int) -> TrainState:
        self._check_files(fn, step)
        document = self._document(fn, step)
        saved = document["arrays"]
        _check_fits(fn, step, saved, target)
        leaves, treedef = jax.tree_util.tree_flatten(target)
        # Restored with the saved dtypes (the checksums are over those bytes), cast afterwards.
        abstract = jax.tree_util.tree_unflatten(
            treedef,
            [
                jax.ShapeDtypeStruct(
                    tuple(s["shape"]), np.dtype(s["dtype"]), sharding=getattr(x, "sharding", None)
                )
                for s, x in zip(saved, leaves, strict=True)
            ],
        )
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            )["state"]
        except Exception as e:
            reason = f"its arrays cannot be read: {_first_line(e)}"
            raise _corrupt(fn, step, self.directory, reason) from e
        values = jax.tree_util.tree_leaves(restored)
        for s, x in zip(saved, values, strict=True):
            crc = s.get("crc32")
            if crc is not None and _crc32(_host(x)) != crc:
                raise _corrupt(fn, step, self.directory, f"{s['path']} does not match its CRC-32")
        cast = [
            v if np.dtype(v.dtype) == np.dtype(t.dtype) else v.astype(t.dtype)
            for v, t in zip(values, leaves, strict=True)
        ]
        return TrainState(*jax.tree_util.tree_unflatten(treedef, cast))

    def wait(self) -> None:
        """Blocks until any background save has finished."""
        self._list_saved_files()

    def close(self) -> None:
        """Finishes pending saves and releases the manager."""
        self._list_saved_files()
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _corrupt(fn: str, step: int, directory: str, reason: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f"{fn}: the checkpoint of step {step} in {directory} is corrupted: {reason}", step, reason
    )


def _check_fits(fn: str, step: int, saved: list[dict[str, Any]], target: TrainState) -> None:
    """Raises a ValueError listing the arrays whose paths or shapes differ."""
    want = {s["path"]: s for s in saved}
    got = {a["path"]: a for a in _arrays(target)}
    lines = []
    for path in [p for p in want if p not in got]:
        lines.append(f"{path} is in the checkpoint, not in the target")
    for path in [p for p in got if p not in want]:
        lines.append(f"{path} is in the target, not in the checkpoint")
    for path in [p for p in want if p in got]:
        if want[path]["shape"] != got[path]["shape"]:
            lines.append(
                f"{path} is {_describe(want[path]['shape'], want[path]['dtype'])} in the "
                f"checkpoint, {_describe(got[path]['shape'], got[path]['dtype'])} in the target"
            )
    if not lines and [s["path"] for s in saved] != list(got):
        lines.append("the arrays are in another order")
    if lines:
        shown = lines[:6] + ([f"... and {len(lines) - 6} more"] if len(lines) > 6 else [])
        raise ValueError(
            f"{fn}: the target does not fit the checkpoint of step {step} (another model "
            f"configuration?): {'; '.join(shown)}"
        )


def _check_state(fn: str, state: Any, name: str = "state") -> None:
    if not isinstance(state, TrainState):
        raise TypeError(f"{fn}: {name} must be a TrainState, got {type(state).__name__}")


__all__ = [
    "FORMAT",
    "LOOP_KEY",
    "Checkpointer",
    "CorruptCheckpointError",
    "CorruptCheckpointWarning",
]
