"""What every experiment shares: the command line, the cells, a readout layer, the training
run, and the results (``metrics.json``, ``log.jsonl``, PNG learning curves).

Each experiment script stays readable top to bottom: configuration, data, model, loop, results.
This module only holds the parts that would otherwise be copied into every script.

A run directory (``--out``) is resumable and safe to run again:

* ``fit`` holds a lock on it (``<out>/run.lock``, with the holder's pid): a second process
  writing the same directory stops with a message naming the first; a lock left by a killed
  process is stale and taken over.
* The checkpoints store the run's configuration. Resuming with options that change the run
  (``--seed``, ``--cell``, ``--hidden``, ``--lr``, ...) is refused with the differing options
  listed; ``RESUMABLE`` names those that may change (``--steps``, to extend a run with a
  constant learning rate; how the run is logged, shown, checkpointed and placed). ``--overwrite``
  starts afresh in the same directory.
* ``fit`` returns the history read back from ``log.jsonl``, so ``metrics.json`` is the same
  whether the run was interrupted or not, and a finished run run again only re-evaluates.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import math
import os
import shutil
import socket
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

import lstm_jax
from lstm_jax import training
from lstm_jax.typing import Array, PyTree

CELLS = ("simple_rnn", "lstm", "peephole_lstm", "cifg_lstm", "gru")
# Configuration fields that may differ between a run and its resumption: they change how the run
# is shown, logged, checkpointed and placed, not the numbers it computes. ``steps`` may change
# too, under conditions (see ``check_resume``).
RESUMABLE = frozenset(
    {
        "out",
        "data_dir",
        "progress",
        "tensorboard",
        "log_every",
        "eval_every",
        "checkpoint_every",
        "keep",
        "devices",
        "overwrite",
    }
)
# metrics.json says "diverged" when the final train loss is this many times that of step 0.
DIVERGENCE_FACTOR = 10.0
LOCK_FILE = "run.lock"


class RunError(Exception):
    """A run that cannot go ahead as asked; the command line prints it as one line."""


class ConfigMismatchError(RunError, ValueError):
    """``--out`` holds checkpoints of a run with another configuration."""


class RunLockedError(RunError, RuntimeError):
    """Another live process holds the lock on ``--out``."""


# ---- command line -------------------------------------------------------------------------


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an int >= ``low`` (argparse names the flag in its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an int >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def run_directory(text: str) -> str:
    """An argparse ``type``: a directory to write to (it may not exist yet; not a file)."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is an existing file, not a directory")
    return text


def base_parser(description: str, **defaults: Any) -> argparse.ArgumentParser:
    """The options every experiment has; ``defaults`` overrides their default values."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    at_least_0, at_least_1 = int_at_least(0), int_at_least(1)
    p.add_argument("--cell", choices=CELLS, default="lstm", help="recurrent cell")
    # >= 0 here, since a script may give 0 a meaning (ptb_lm: epochs); check_config wants >= 1.
    p.add_argument("--steps", type=at_least_0, default=2000, help="optimiser steps")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the data")
    p.add_argument("--out", type=run_directory, default="runs/experiment", help="output directory")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the checkpoints, log and metrics in --out first (instead of resuming)",
    )
    p.add_argument("--hidden", type=at_least_1, default=64, help="hidden size")
    p.add_argument("--batch-size", type=at_least_1, default=64, help="sequences per step")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="peak learning rate (Adam)")
    p.add_argument(
        "--schedule",
        choices=training.SCHEDULES,
        default="constant",
        help="learning-rate schedule",
    )
    p.add_argument(
        "--clip-norm", type=positive_float, default=1.0, help="global gradient-norm clip"
    )
    p.add_argument("--eval-size", type=at_least_1, default=1000, help="test sequences")
    p.add_argument("--log-every", type=at_least_1, default=50, help="steps per logged train record")
    p.add_argument(
        "--eval-every",
        type=at_least_0,
        default=250,
        help="steps between test evaluations (0: at the end only)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=at_least_0,
        default=0,
        help="steps between checkpoints (0: at the end)",
    )
    p.add_argument("--keep", type=at_least_1, default=2, help="checkpoints to keep")
    p.add_argument(
        "--devices", type=at_least_1, default=None, help="devices to shard the batch over (all)"
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: only on a terminal)",
    )
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard events")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize() (auto-detected on SLURM, Open MPI "
        "and Cloud TPU; elsewhere give --coordinator, --num-processes, --process-id)",
    )
    p.add_argument("--coordinator", default=None, help="multi-host coordinator HOST:PORT")
    p.add_argument("--num-processes", type=int, default=None, help="multi-host process count")
    p.add_argument("--process-id", type=int, default=None, help="this process's index")
    p.set_defaults(**defaults)
    return p


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    """Fills the frozen dataclass ``cls`` from parsed arguments (``--batch-size`` ->
    ``batch_size``); arguments the dataclass does not name are ignored.

    With ``--distributed`` this also joins the multi-host run, which JAX requires before any
    other JAX call; every script calls this first.
    """
    if getattr(args, "distributed", False):
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


def check_config(config: Any) -> None:
    """The checks every experiment's numbers must pass before anything is built."""
    for name in ("steps", "hidden", "batch_size", "eval_size", "log_every"):
        value = getattr(config, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise ValueError(f"--lr must be a finite number > 0, got {config.lr}")
    devices = getattr(config, "devices", None)
    if devices is not None and not 1 <= devices <= jax.device_count():
        raise ValueError(
            f"--devices must be between 1 and the {jax.device_count()} devices here, got {devices}"
        )


def cli(main: Callable[[Sequence[str]], Any], argv: Sequence[str] | None = None) -> Any:
    """Runs a script's ``main`` as a command: a ``RunError`` or a corrupted-checkpoint error is
    one line on stderr and exit status 1, not a traceback; warnings are one line each."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "experiment"
    default_format = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *args, **kwargs: (
        f"{prog}: warning: {message}\n"
    )
    try:
        return main(sys.argv[1:] if argv is None else argv)
    except (RunError, training.CorruptCheckpointError) as e:
        sys.exit(f"{prog}: error: {e}")
    finally:
        warnings.formatwarning = default_format


def local_data_key(seed_key: Array) -> Array:
    """The key of this process's share of the training data (each host draws its own rows)."""
    if jax.process_count() == 1:
        return seed_key
    return jax.random.fold_in(seed_key, jax.process_index())


def local_batch_size(batch_size: int) -> int:
    """Rows this process draws per step: ``--batch-size`` is the global batch."""
    n = jax.process_count()
    if batch_size % n:
        raise ValueError(f"--batch-size must be a multiple of the {n} processes, got {batch_size}")
    return batch_size // n


# ---- model pieces -------------------------------------------------------------------------


def make_cell(name: str, hidden: int) -> lstm_jax.Cell:
    """One of ``CELLS`` with hidden size ``hidden`` and the library's default initialisers."""
    if name not in CELLS:
        raise ValueError(f"make_cell: name must be one of {CELLS}, got {name!r}")
    return getattr(lstm_jax, name)(hidden)


def dense_init(key: Array, n_in: int, n_out: int) -> dict[str, Array]:
    """A linear readout ``[n_in] -> [n_out]`` (LeCun-normal weights, zero bias)."""
    w = jax.random.normal(key, (n_in, n_out), jnp.float32) / math.sqrt(n_in)
    return {"w": w, "b": jnp.zeros((n_out,), jnp.float32)}


def dense(params: dict[str, Array], x: Array) -> Array:
    """``x: [*batch, n_in] -> [*batch, n_out]``."""
    b = params["b"].reshape((1,) * (x.ndim - 1) + params["b"].shape)
    return x @ params["w"] + b


def count_params(params: PyTree) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))


# ---- the run ------------------------------------------------------------------------------


def fit(
    config: Any,
    params: PyTree,
    loss_fn: Callable[[PyTree, PyTree, Array], Any],
    batch_fn: Callable[[int], PyTree],
    eval_fn: Callable[[PyTree], dict[str, float]],
    *,
    optimizer: Any = None,
    may_change: Sequence[str] = (),
) -> tuple[PyTree, list[dict[str, Any]]]:
    """Trains ``params`` on ``batch_fn`` with the options of ``base_parser``.

    Writes ``<out>/log.jsonl`` and checkpoints under ``<out>/checkpoints``, resuming from them
    when present (and refusing to when they hold a run with another configuration; see
    ``check_resume``), while holding the lock on ``<out>``. ``may_change`` names options of the
    script, beyond ``RESUMABLE``, that do not change the training (evaluation-only options).

    Returns:
      The final parameters and the whole run's history, read back from ``log.jsonl`` (records
      of this process and of the interrupted ones it resumed, without their ``time``).

    Raises:
      ConfigMismatchError: ``--out`` holds checkpoints of another configuration.
      RunLockedError: another process is writing ``--out``.
    """
    schedule = training.learning_rate_schedule(
        config.lr, schedule=config.schedule, total_steps=config.steps
    )
    if optimizer is None:
        optimizer = training.make_optimizer(schedule, clip_norm=config.clip_norm)
    mesh = training.make_mesh(config.devices)
    state = training.create_train_state(params, optimizer, jax.random.PRNGKey(config.seed))
    shardings = training.state_shardings(state, mesh, optimizer)
    state = training.place_state(state, shardings)
    step = training.make_train_step(
        loss_fn, optimizer, learning_rate=schedule, state_sharding=shardings
    )
    os.makedirs(config.out, exist_ok=True)
    with RunLock(config.out):
        if getattr(config, "overwrite", False):
            clear_run(config.out)
        with training.Checkpointer(
            os.path.join(config.out, "checkpoints"),
            save_every=config.checkpoint_every,
            keep=config.keep,
            metadata={"config": dataclasses.asdict(config)},
        ) as ckpt:
            saved = ckpt.metadata()
            if saved is not None:
                check_resume(config, saved.get("config"), ckpt.latest_step(), may_change)
            with training.MetricLogger(config.out, tensorboard=config.tensorboard) as logger:
                state, _ = training.train(
                    state,
                    step,
                    batch_fn,
                    num_steps=config.steps,
                    checkpointer=ckpt,
                    logger=logger,
                    log_every=min(config.log_every, config.steps),
                    eval_fn=eval_fn,
                    eval_every=config.eval_every,
                    mesh=mesh,
                    progress=config.progress,
                )
        history = read_history(config.out)
    return state.params, history


def read_history(out: str) -> list[dict[str, Any]]:
    """The records of ``<out>/log.jsonl`` as ``training.train`` returns them: without the
    wall-clock ``time``, with non-finite values back as floats."""
    history = []
    for record in training.read_jsonl(os.path.join(out, "log.jsonl")):
        history.append(
            {
                k: float(v) if k != "split" and v in ("nan", "inf", "-inf") else v
                for k, v in record.items()
                if k != "time"
            }
        )
    return history


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_resume(
    config: Any, saved: dict[str, Any] | None, step: int | None, may_change: Sequence[str] = ()
) -> None:
    """Refuses to resume a run whose checkpoints were written with another configuration.

    Fields in ``RESUMABLE`` and ``may_change`` may differ. ``steps`` may change only with a
    constant learning rate (a schedule decays over ``--steps``), and not below the step of the
    checkpoint.

    Raises:
      ConfigMismatchError: the differing options, each as ``--name saved -> now``.
    """
    out = config.out
    hint = "pass --overwrite to start afresh there, or choose a new --out"
    if not isinstance(saved, dict):
        raise ConfigMismatchError(
            f"{out} holds checkpoints that do not record their configuration (step {step}); {hint}"
        )
    now = json.loads(json.dumps(dataclasses.asdict(config)))
    allowed = RESUMABLE | set(may_change) | {"steps"}
    differ = [
        f"{_flag(k)} {saved.get(k)!r} -> {now.get(k)!r}"
        for k in sorted(set(saved) | set(now))
        if k not in allowed and saved.get(k) != now.get(k)
    ]
    steps_then, steps_now = saved.get("steps"), now.get("steps")
    if steps_then != steps_now:
        schedule = now.get("schedule", "constant")
        if schedule != "constant":
            differ.append(
                f"--steps {steps_then!r} -> {steps_now!r} (the {schedule} schedule decays over "
                f"--steps; only a constant one can be extended)"
            )
        elif step is not None and steps_now < step:
            differ.append(
                f"--steps {steps_then!r} -> {steps_now!r} (below the checkpoint's step {step})"
            )
    if differ:
        raise ConfigMismatchError(
            f"{out} holds a run with another configuration (checkpoint of step {step}): "
            f"{', '.join(differ)}; rerun with the same options to resume it, {hint}"
        )


def clear_run(out: str) -> None:
    """Deletes what ``fit`` and ``write_metrics`` wrote in ``out`` (for ``--overwrite``)."""
    for name in ("checkpoints", "tensorboard"):
        shutil.rmtree(os.path.join(out, name), ignore_errors=True)
    for name in ("log.jsonl", "metrics.json"):
        path = os.path.join(out, name)
        if os.path.exists(path):
            os.remove(path)


class RunLock:
    """An exclusive lock on a run directory, held while a process writes it.

    ``<directory>/run.lock`` holds the holder's pid and host, and the holder keeps an
    ``fcntl.flock`` on it, which the operating system releases when the holder exits or is
    killed. So a lock whose holder is gone is stale, and is taken over with a note on stderr.
    The file is removed on release. In a multi-host run only process 0 takes the lock.

    Raises:
      RunLockedError: on entering, when a live process holds the lock.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, LOCK_FILE)
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
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


# ---- results ------------------------------------------------------------------------------


def divergence(history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``{"diverged": bool, "loss_ratio": final / initial}``: the last train record's loss over
    the loss at step 0 (``initial_loss`` of the first train record, else its mean loss).
    Diverged when the final loss is not finite or more than ``DIVERGENCE_FACTOR`` times the
    initial one. Empty without train records."""
    train = [r for r in history if r["split"] == "train"]
    if not train:
        return {}
    initial = float(train[0].get("initial_loss", train[0]["loss"]))
    final = float(train[-1]["loss"])
    ratio = final / initial if math.isfinite(initial) and initial > 0 else float("nan")
    diverged = not math.isfinite(final) or ratio > DIVERGENCE_FACTOR
    return {
        "diverged": diverged,
        "loss_ratio": ratio if math.isfinite(ratio) else str(ratio),
        "initial_loss": initial if math.isfinite(initial) else str(initial),
        "final_loss": final if math.isfinite(final) else str(final),
    }


def write_metrics(
    config: Any,
    metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
    *,
    history: Sequence[dict[str, Any]] | None = None,
) -> str:
    """Writes ``<out>/metrics.json``: the final metrics and the full configuration; with the
    run's ``history``, also whether it diverged (``divergence``; a diverged run also gets a
    warning line on stderr). The file is replaced atomically, so a reader never sees half of
    it."""
    path = os.path.join(config.out, "metrics.json")
    check = divergence(history) if history is not None else {}
    if check.get("diverged"):
        initial, final = float(check["initial_loss"]), float(check["final_loss"])
        print(
            f"warning: the run diverged: the train loss ended at {final:.4g}, "
            f"{final / initial:.3g} times its value at step 0 ({initial:.4g}); try a lower --lr",
            file=sys.stderr,
        )
    payload = {
        "metrics": metrics,
        "config": dataclasses.asdict(config),
        "devices": jax.device_count(),
        "backend": jax.default_backend(),
        **check,
        **(extra or {}),
    }
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def plot_curves(
    history: Sequence[dict[str, Any]],
    path: str,
    *,
    panels: Sequence[tuple[str, Sequence[tuple[str, str]]]],
    title: str,
    baselines: dict[str, float] | None = None,
    log_y: Sequence[str] = (),
) -> str:
    """Draws learning curves to a PNG.

    Args:
      history: the records ``training.train`` returned.
      path: the PNG to write.
      panels: one ``(y label, [(split, metric), ...])`` per panel.
      title: the figure's title.
      baselines: ``{y label: value}``, drawn as a dashed line in that panel.
      log_y: the y labels whose panel uses a log scale.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (ylabel, curves) in zip(axes[0], panels, strict=True):
        for split, metric in curves:
            pts = [
                (r["step"], r[metric])
                for r in history
                if r["split"] == split and isinstance(r.get(metric), int | float)
            ]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="." if len(pts) < 30 else None, label=f"{split} {metric}")
        if baselines and ylabel in baselines:
            ax.axhline(baselines[ylabel], color="gray", linestyle="--", label="baseline")
        if ylabel in log_y:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    tmp = f"{path}.tmp{os.getpid()}"
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    os.replace(tmp, path)  # a concurrent rerun never leaves half a PNG
    return path


def last_eval(history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The final eval record, without its bookkeeping keys."""
    evals = [r for r in history if r["split"] == "eval"]
    return {k: v for k, v in evals[-1].items() if k not in ("split",)} if evals else {}
