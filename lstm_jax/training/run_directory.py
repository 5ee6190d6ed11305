"""A run directory that is safe to resume and to run again: its lock, the check that a resumed
run is the same run, starting afresh, and the run's history read back from its log.

A run writes one directory: ``checkpoints/`` (``Checkpointer``), ``log.jsonl`` and
``tensorboard/`` (``MetricLogger``), and whatever results it adds (``metrics.json``). Put
together::

    from lstm_jax import training as T

    with T.RunLock(out):                             # one process writes ``out`` at a time
        if overwrite:
            T.clear_run(out)                         # start afresh instead of resuming
        with T.Checkpointer(f"{out}/checkpoints", metadata={"config": config_dict}) as ckpt:
            T.check_resume(ckpt, config_dict)        # the checkpoints are of this run
            with T.MetricLogger(out) as logger:
                state, _ = T.train(state, step, batch_fn, num_steps=n,
                                   checkpointer=ckpt, logger=logger)
        history = T.read_history(out)                # the whole run, resumed parts included

``train`` returns only the records of the steps it ran; ``read_history`` gives those of the
whole run, so the results of an interrupted and resumed run are those of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import socket
import sys
from collections.abc import Collection, Mapping
from typing import Any

import jax

from lstm_jax.training import distributed
from lstm_jax.training.checkpoints import Checkpointer
from lstm_jax.training.logging import read_jsonl

LOCK_FILE = "run.lock"
# What ``clear_run`` deletes by default: the checkpoints, the logs and the results file.
RUN_FILES = ("checkpoints", "tensorboard", "log.jsonl", "metrics.json")
# The checkpoint metadata key under which ``check_resume`` finds the run's configuration.
CONFIG_KEY = "config"


class RunError(Exception):
    """A run that cannot go ahead as asked (a command line prints it as one line)."""


class ConfigMismatchError(RunError, ValueError):
    """The run directory holds checkpoints of a run with another configuration."""


class RunLockedError(RunError, RuntimeError):
    """Another live process holds the lock on the run directory."""


class RunLock:
    """An exclusive lock on a run directory, held while a process writes it.

    ``<directory>/run.lock`` holds the holder's pid and host, and the holder keeps an
    ``fcntl.flock`` on it, which the operating system releases when the holder exits or is
    killed. So a lock whose holder is gone is stale, and is taken over with a note on stderr.
    The file is removed on release. The directory is created if missing. In a multi-host run
    only process 0 takes the lock.

    Args:
      directory: the run directory.

    Raises:
      RunLockedError: on entering, when a live process holds the lock.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, LOCK_FILE)
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        os.makedirs(self.directory, exist_ok=True)
        if jax.process_index() != 0:
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_lock(fd)
                os.close(fd)
                raise RunLockedError(
                    f"{self.directory} is being written by process {holder or '(unknown)'} "
                    f"(lock file {self.path}); wait for it to finish or choose another --out"
                ) from None
            # The previous holder may have removed the file between our open and our flock.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        stale = _read_lock(fd)
        if stale:
            print(
                f"note: taking over the stale lock {self.path} of process {stale}, which is no "
                f"longer running",
                file=sys.stderr,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is None:
            return
        os.remove(self.path)
        os.close(self._fd)  # releases the flock
        self._fd = None


def _read_lock(fd: int) -> str:
    return os.pread(fd, 200, 0).decode(errors="replace").strip()


def clear_run(directory: str | os.PathLike, names: Collection[str] = RUN_FILES) -> None:
    """Deletes ``names`` (files or folders) in ``directory``, by default what a run writes
    there (``RUN_FILES``: checkpoints, logs, ``metrics.json``), so that the next run starts
    afresh instead of resuming. Missing names are skipped; the directory itself stays.

    In a multi-process run process 0 deletes and every process waits for it here (a process
    still deleting while another already writes would remove the new files)."""
    if distributed.is_writer():
        _delete(directory, names)
    distributed.sync("lstm_jax.clear_run")


def _delete(directory: str | os.PathLike, names: Collection[str]) -> None:
    for name in names:
        path = os.path.join(os.fspath(directory), name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.remove(path)


def read_history(directory: str | os.PathLike, filename: str = "log.jsonl") -> list[dict[str, Any]]:
    """The records of ``<directory>/log.jsonl`` as ``train`` returns them: without the
    wall-clock ``time``, with non-finite values back as floats. After a resumed run these are
    the records of the whole run, those of the interrupted processes included."""
    history = []
    for record in read_jsonl(os.path.join(os.fspath(directory), filename)):
        history.append(
            {
                k: float(v) if k != "split" and v in ("nan", "inf", "-inf") else v
                for k, v in record.items()
                if k != "time"
            }
        )
    return history


def _as_dict(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, Mapping):
        raise TypeError(
            f"check_resume: config must be a dataclass instance or a dict, got "
            f"{type(config).__name__}"
        )
    # Compared as saved: JSON turns tuples into lists.
    return json.loads(json.dumps(dict(config)))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def config_differences(
    saved: Mapping[str, Any],
    config: Any,
    *,
    step: int | None,
    may_change: Collection[str] = (),
) -> list[str]:
    """What differs between the configuration a run's checkpoints were saved with and
    ``config``, each as ``--name saved -> now`` (names written as command-line flags).

    Fields in ``may_change`` may differ. ``steps`` (the run's length) may grow when
    ``schedule`` is ``"constant"`` or absent (other schedules decay over ``steps``), and never
    below the checkpoint's ``step``.

    Args:
      saved: the saved configuration.
      config: the configuration now, a dataclass instance or a dict.
      step: the checkpoint's step (None if unknown).
      may_change: fields that do not change the numbers (how a run is logged or shown).

    Returns:
      The differences, empty when the run may resume.
    """
    now = _as_dict(config)
    allowed = set(may_change) | {"steps"}
    differ = [
        f"{_flag(k)} {saved.get(k)!r} -> {now.get(k)!r}"
        for k in sorted(set(saved) | set(now))
        if k not in allowed and saved.get(k) != now.get(k)
    ]
    steps_then, steps_now = saved.get("steps"), now.get("steps")
    if "steps" not in may_change and steps_then != steps_now:
        schedule = now.get("schedule", "constant")
        if schedule != "constant":
            differ.append(
                f"--steps {steps_then!r} -> {steps_now!r} (the {schedule} schedule decays over "
                f"--steps; only a constant one can be extended)"
            )
        elif step is not None and steps_now is not None and steps_now < step:
            differ.append(
                f"--steps {steps_then!r} -> {steps_now!r} (below the checkpoint's step {step})"
            )
    return differ


def check_resume(
    checkpointer: Checkpointer, config: Any, *, may_change: Collection[str] = ()
) -> None:
    """Refuses to resume from checkpoints written with another configuration.

    The run's configuration is the ``"config"`` entry of the checkpoints' metadata
    (``Checkpointer(..., metadata={"config": ...})``). Nothing is checked when there is no
    checkpoint yet. What may differ is as in ``config_differences``. The message is written
    for a command line whose flags are the configuration's fields (``--overwrite``, ``--out``).

    Args:
      checkpointer: the run's checkpointer, before ``train`` restores from it.
      config: the configuration now, a dataclass instance or a dict.
      may_change: fields that may differ (how the run is logged, shown or placed).

    Raises:
      ConfigMismatchError: the checkpoints record no configuration, or another one; the
        message lists every differing option as ``--name saved -> now``.
    """
    step = checkpointer.latest_step()
    if step is None:
        return
    where = os.path.dirname(checkpointer.directory)
    hint = "pass --overwrite to start afresh there, or choose a new --out"
    saved = (checkpointer.metadata() or {}).get(CONFIG_KEY)
    if not isinstance(saved, Mapping):
        raise ConfigMismatchError(
            f"{where} holds checkpoints that do not record their configuration (step {step}); "
            f"{hint}"
        )
    differ = config_differences(saved, config, step=step, may_change=may_change)
    if differ:
        raise ConfigMismatchError(
            f"{where} holds a run with another configuration (checkpoint of step {step}): "
            f"{', '.join(differ)}; rerun with the same options to resume it, {hint}"
        )
