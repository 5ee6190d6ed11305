"""Metric logs: one JSON object per line in ``log.jsonl``, optionally TensorBoard too.

Each line is ``{"step": int, "split": "train" | "eval" | ..., "time": seconds since the run
started, <metric>: float, ...}``, flushed as it is written so a crashed run keeps its log.
When a run resumes from a checkpoint at step N, ``truncate_after(N)`` drops the lines the
interrupted run wrote after N; those steps are run again and would otherwise appear twice (a
finished run run again also drops its final eval line, which it writes again).

In a multi-process run only process 0 writes (``write=None``); the logger of every other process
takes the same calls and writes nothing, so the script is the same on every process.

TensorBoard logging uses ``tensorboardX`` (a small, pure-Python event writer) when it is
installed and asked for; nothing else here needs it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a JSONL log (an empty list if the file does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _jsonable(value: Any) -> Any:
    value = float(value)
    # JSON has no NaN/inf; strings keep the log parseable by strict readers.
    return value if math.isfinite(value) else str(value)


class MetricLogger:
    """Appends metrics to ``<directory>/log.jsonl`` (and TensorBoard events if asked).

    Args:
      directory: where ``log.jsonl`` (and ``tensorboard/``) go; created if missing.
      tensorboard: also write TensorBoard events; needs ``tensorboardX``.
      filename: the JSONL file's name.
      write: whether this logger writes; None: only on process 0 of a multi-process run.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        tensorboard: bool = False,
        filename: str = "log.jsonl",
        write: bool | None = None,
    ) -> None:
        self.path = os.path.join(os.fspath(directory), filename)
        self.writes = jax.process_index() == 0 if write is None else bool(write)
        self._start = time.perf_counter()
        self._file = None
        self._writer = None
        if not self.writes:
            return
        os.makedirs(directory, exist_ok=True)
        self._file = open(self.path, "a")
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError as e:
                raise ImportError(
                    "MetricLogger: tensorboard=True needs tensorboardX (pip install tensorboardX)"
                ) from e
            self._writer = SummaryWriter(os.path.join(os.fspath(directory), "tensorboard"))

    def log(self, step: int, metrics: Mapping[str, Any], split: str = "train") -> None:
        """Writes one record; ``metrics`` maps names to scalars (floats or 0-d arrays)."""
        if not isinstance(metrics, Mapping):
            raise TypeError(
                f"MetricLogger.log: metrics must be a dict, got {type(metrics).__name__}"
            )
        if self._file is None:
            return
        record = {"step": int(step), "split": split, "time": time.perf_counter() - self._start}
        record.update({name: _jsonable(v) for name, v in metrics.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for name, v in metrics.items():
                self._writer.add_scalar(f"{split}/{name}", float(v), int(step))

    def truncate_after(self, step: int, *, drop_at_step: Sequence[str] = ()) -> None:
        """Drops records with ``step`` greater than ``step`` (for a resumed run), and those at
        ``step`` itself whose split is in ``drop_at_step`` (records about to be written again).
        """
        if self._file is None:
            return
        self._file.close()
        kept = [
            r
            for r in read_jsonl(self.path)
            if r.get("step", 0) < step
            or (r.get("step", 0) == step and r.get("split") not in drop_at_step)
        ]
        with open(self.path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        self._file = open(self.path, "a")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
