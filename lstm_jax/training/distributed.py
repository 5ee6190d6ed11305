"""Multi-process runs on JAX's distributed runtime: joining the run, which rows of the global
batch a process loads, and which process writes.

One process per host (or several on one machine, for testing) runs the same script. Each sees
its own devices; the mesh spans all of them, so the train step is the one a single process runs.
What has to be decided per process is written here:

* ``initialize`` joins the run (``jax.distributed.initialize``) with its arguments checked, a
  coordinator that never answers reported as one error naming its address instead of a hang or
  an abort, and the processes checked to agree on their count (and on the run's configuration).
* ``process_rows`` says which rows of the global batch this process holds: a batch is a function
  of the seed and the step alone, each process builds only its rows, and ``shard_batch``
  assembles the global array. So 1 process x 4 devices, 2 x 2 and 4 x 1 train on the same
  batches.
* ``is_writer``: only process 0 writes logs, metrics and plots; every process computes.
  Checkpoints are written by all processes together (Orbax's multi-process save).

A process that hosts the coordinator is process 0. On SLURM, Open MPI and Cloud TPU the
address, count and index are found by JAX itself (pass None).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from lstm_jax.training.sharding import batch_sharding

# Exit status of a process that could not join the run in time.
JOIN_TIMEOUT_EXIT = 3
# Key prefix in the coordinator's key-value store for the agreement check.
_AGREE_KEY = "lstm_jax/agree"


class DistributedError(RuntimeError):
    """The processes of a multi-process run do not agree (count, configuration)."""


def is_writer() -> bool:
    """Whether this process writes the run's files (logs, metrics, plots): process 0."""
    return jax.process_index() == 0


def _check_address(fn: str, coordinator: str | None) -> None:
    if coordinator is None:
        return
    host, sep, port = str(coordinator).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"{fn}: coordinator must be HOST:PORT (for example 10.0.0.1:1234), got {coordinator!r}"
        )


def check_arguments(
    coordinator: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """The checks ``initialize`` makes before contacting anyone (flag names in the messages).

    Raises:
      ValueError: a malformed ``--coordinator``, ``--num-processes`` < 1, or a
        ``--process-id`` outside ``[0, num_processes)``, or only one of the two given.
    """
    fn = "distributed.initialize"
    _check_address(fn, coordinator)
    for name, value, low in (
        ("--num-processes", num_processes, 1),
        ("--process-id", process_id, 0),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{fn}: {name} must be an int, got {value!r}")
        if value is not None and value < low:
            raise ValueError(f"{fn}: {name} must be >= {low}, got {value}")
    if (num_processes is None) != (process_id is None):
        raise ValueError(
            f"{fn}: give both --num-processes and --process-id, or neither (auto-detection), "
            f"got --num-processes {num_processes} and --process-id {process_id}"
        )
    if num_processes is not None and process_id is not None and process_id >= num_processes:
        raise ValueError(
            f"{fn}: --process-id must be between 0 and --num-processes - 1 = {num_processes - 1}, "
            f"got {process_id}"
        )


def join_timeout_message(
    coordinator: str | None, num_processes: int | None, process_id: int | None, timeout: float
) -> str:
    """The error line of a process that could not join the run within ``timeout`` seconds."""
    where = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS") or "(auto-detected)"
    who = (
        f"process {process_id} of {num_processes}"
        if process_id is not None
        else "this process (auto-detected)"
    )
    return (
        f"distributed.initialize: {who} could not join the multi-process run at coordinator "
        f"{where} within {timeout:g} s: is process 0 running and reachable at {where}, and were "
        f"all processes started with the same --num-processes and distinct --process-id?"
    )


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout: float = 300.0,
    heartbeat_timeout: int = 100,
    agree_on: Any = None,
) -> None:
    """Joins a multi-process run: ``jax.distributed.initialize`` with checks. Call it before
    any other JAX call.

    Args:
      coordinator: ``HOST:PORT`` of process 0's coordinator service (None: auto-detected on
        SLURM, Open MPI, Cloud TPU, or ``JAX_COORDINATOR_ADDRESS``).
      num_processes: how many processes take part (None: auto-detected).
      process_id: this process's index in ``[0, num_processes)`` (None: auto-detected).
      timeout: seconds to wait for all processes to join. When they have not, this process
        writes one line naming the coordinator's address on stderr and exits with status
        ``JOIN_TIMEOUT_EXIT`` (the runtime would otherwise abort with a C++ trace).
      heartbeat_timeout: seconds after which a silent process counts as dead and the others
        stop (JAX's default: 100).
      agree_on: a JSON-able value every process must have equal (for example the run's
        configuration); checked after joining, together with the process count.

    Raises:
      ValueError: bad arguments (``check_arguments``), before anything is contacted.
      DistributedError: the processes disagree on their count or on ``agree_on``.
    """
    check_arguments(coordinator, num_processes, process_id)
    if not (isinstance(timeout, int | float) and timeout > 0):
        raise ValueError(f"distributed.initialize: timeout must be > 0 seconds, got {timeout!r}")
    joined = threading.Event()
    message = join_timeout_message(coordinator, num_processes, process_id, timeout)

    def watchdog() -> None:
        if not joined.wait(timeout):
            sys.stderr.write(f"error: {message}\n")
            sys.stderr.flush()
            os._exit(JOIN_TIMEOUT_EXIT)

    threading.Thread(target=watchdog, name="lstm_jax-join-watchdog", daemon=True).start()
    try:
        # The runtime's own deadline comes after ours, so ours is the one that reports.
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            initialization_timeout=int(timeout) + 30,
            heartbeat_timeout_seconds=heartbeat_timeout,
        )
        check_agreement(num_processes, agree_on, timeout=timeout)
    finally:
        joined.set()


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_agreement(num_processes: int | None, agree_on: Any = None, *, timeout: float) -> None:
    """Checks that every process of the run was started with the same process count and the
    same ``agree_on`` value, through the coordinator's key-value store (no device collective,
    so it also works when the counts differ and a collective would hang).

    Raises:
      DistributedError: naming the first process that differs and how.
    """
    from jax._src import distributed as _dist

    client = _dist.global_state.client
    if client is None:  # one process, nothing to agree with
        return
    count = num_processes if num_processes is not None else jax.process_count()
    mine = {"num_processes": count, "config": _digest(agree_on)}
    client.key_value_set(f"{_AGREE_KEY}/{jax.process_index()}", json.dumps(mine))
    for other in range(count):
        try:
            theirs = json.loads(
                client.blocking_key_value_get(f"{_AGREE_KEY}/{other}", int(timeout * 1000))
            )
        except Exception as e:
            raise DistributedError(
                f"distributed.initialize: process {other} of {count} did not report within "
                f"{timeout:g} s ({type(e).__name__}); were all processes started with "
                f"--num-processes {count}?"
            ) from None
        if theirs["num_processes"] != count:
            raise DistributedError(
                f"distributed.initialize: process {other} was started with --num-processes "
                f"{theirs['num_processes']}, process {jax.process_index()} with {count}; start "
                f"every process with the same --num-processes"
            )
        if theirs["config"] != mine["config"]:
            raise DistributedError(
                f"distributed.initialize: process {other} was started with another "
                f"configuration than process {jax.process_index()}; start every process with "
                f"the same options"
            )


def rows_by_process(device_processes: Sequence[int], global_rows: int) -> dict[int, np.ndarray]:
    """Which rows of a ``[global_rows, ...]`` batch split along a one-axis mesh each process
    holds, from the process index of each mesh device in mesh order (a pure function of the
    layout: device ``k`` holds rows ``[k * r, (k + 1) * r)``, ``r = global_rows / devices``).

    Returns:
      ``{process index: sorted row indices}``, the order ``shard_batch`` expects them in.
    """
    fn = "rows_by_process"
    n = len(device_processes)
    if n == 0:
        raise ValueError(f"{fn}: device_processes must name at least one device, got []")
    if isinstance(global_rows, bool) or not isinstance(global_rows, int) or global_rows < 1:
        raise ValueError(f"{fn}: global_rows must be an int >= 1, got {global_rows!r}")
    if global_rows % n:
        raise ValueError(
            f"{fn}: global_rows ({global_rows}) must divide evenly among the {n} devices"
        )
    per = global_rows // n
    rows: dict[int, list[int]] = {}
    for k, p in enumerate(device_processes):
        rows.setdefault(int(p), []).extend(range(k * per, (k + 1) * per))
    return {p: np.asarray(sorted(r), np.int64) for p, r in sorted(rows.items())}


def process_rows(mesh: Mesh, global_rows: int) -> np.ndarray:
    """``[local_rows]``: the indices of the rows of a ``[global_rows, ...]`` batch that this
    process holds on ``mesh`` (ascending; ``arange(global_rows)`` with one process). Build
    exactly these rows of each batch and hand them to ``shard_batch``.

    Raises:
      ValueError: ``global_rows`` does not divide among the mesh's devices, or none of the
        mesh's devices belongs to this process.
    """
    fn = "process_rows"
    n = mesh.devices.size
    if isinstance(global_rows, bool) or not isinstance(global_rows, int) or global_rows < 1:
        raise ValueError(f"{fn}: global_rows must be an int >= 1, got {global_rows!r}")
    if global_rows % n:
        raise ValueError(
            f"{fn}: the global batch ({global_rows} rows) must divide evenly among the {n} "
            f"devices of the mesh"
        )
    indices = batch_sharding(mesh).addressable_devices_indices_map((global_rows,))
    if not indices:
        raise ValueError(
            f"{fn}: none of the mesh's {n} devices belongs to process {jax.process_index()}; "
            f"build the mesh over every process's devices"
        )
    rows = set()
    for (index,) in indices.values():
        rows.update(range(*index.indices(global_rows)))
    return np.asarray(sorted(rows), np.int64)


def sync(name: str) -> None:
    """Waits until every process reaches ``sync(name)`` (nothing to wait for with one)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


__all__ = [
    "JOIN_TIMEOUT_EXIT",
    "DistributedError",
    "check_agreement",
    "check_arguments",
    "initialize",
    "is_writer",
    "join_timeout_message",
    "process_rows",
    "rows_by_process",
    "sync",
]
