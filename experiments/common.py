"""What every experiment shares: the configuration fields and command line, the cells, a
readout layer, and the results (``metrics.json`` and PNG learning curves).

Each experiment script reads top to bottom: its ``Config`` (a frozen dataclass extending
``RunConfig``; the command line is derived from it), data, model, the training loop built from
``lstm_jax.training``, results. This module only holds the parts that would otherwise be copied
into every script; the run directory's lock, resume check and history are
``lstm_jax.training.run_directory``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

import lstm_jax
from lstm_jax import training
from lstm_jax.training import distributed
from lstm_jax.typing import Array, PyTree

# The help of every --data-dir option (the formatter appends "(default: None)" once).
DATA_DIR_HELP = (
    "TFDS data dir; None: $LSTM_JAX_DATA_DIR, else ~/.cache/lstm_jax/tensorflow_datasets"
)
CELLS = (
    "simple_rnn",
    "lstm",
    "peephole_lstm",
    "cifg_lstm",
    "gru",
    "lstmp",
    "layer_norm_lstm",
    "layer_norm_gru",
    "mgu",
    "min_gru",
    "min_lstm",
    "slstm",
)
# Cells whose constructor needs more than the hidden size: the extra configuration, by name.
CELL_OPTIONS = {"lstmp": lambda hidden: {"proj_size": max(1, hidden // 2)}}
# Configuration fields that may differ between a run and its resumption: they change how the run
# is shown, logged, checkpointed and placed, not the numbers it computes (``--steps`` may grow
# too, with a constant schedule; see ``training.config_differences``).
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


def option(
    default: Any,
    help: str,
    *,
    type: Callable[[str], Any] | None = None,
    choices: Sequence[Any] | None = None,
) -> Any:
    """A ``Config`` field that is also a command-line option ``--field-name``.

    Args:
      default: the field's default, also the option's.
      help: the option's help text.
      type: parses the option's text (default: the type of ``default``, else ``str``);
        ``bool`` makes a flag: ``--name`` when the default is False, ``--name/--no-name``
        otherwise.
      choices: the values allowed.

    A subclass may give a field a new default with a plain ``name: type = value``; the
    option keeps the help, type and choices declared here.
    """
    return dataclasses.field(
        default=default, metadata={"help": help, "type": type, "choices": choices}
    )


_at_least_0, _at_least_1 = int_at_least(0), int_at_least(1)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The fields every experiment's ``Config`` has; a script's ``Config`` extends it (its own
    fields, and new defaults for these) and ``parse_config`` reads it from the command line."""

    cell: str = option("lstm", "recurrent cell", choices=CELLS)
    # >= 0 here, since a script may give 0 a meaning (ptb_lm: epochs); check_config wants >= 1.
    steps: int = option(2000, "optimiser steps", type=_at_least_0)
    seed: int = option(0, "seed of the initialisation and the data")
    out: str = option("runs/experiment", "output directory", type=run_directory)
    overwrite: bool = option(
        False, "delete the checkpoints, log and metrics in --out first (instead of resuming)"
    )
    hidden: int = option(64, "hidden size", type=_at_least_1)
    batch_size: int = option(64, "sequences per step", type=_at_least_1)
    lr: float = option(1e-3, "peak learning rate (Adam)", type=positive_float)
    schedule: str = option("constant", "learning-rate schedule", choices=training.SCHEDULES)
    clip_norm: float = option(1.0, "global gradient-norm clip", type=positive_float)
    eval_size: int = option(1000, "test sequences", type=_at_least_1)
    log_every: int = option(50, "steps per logged train record", type=_at_least_1)
    eval_every: int = option(
        250, "steps between test evaluations (0: at the end only)", type=_at_least_0
    )
    checkpoint_every: int = option(0, "steps between checkpoints (0: at the end)", type=_at_least_0)
    keep: int = option(2, "checkpoints to keep", type=_at_least_1)
    devices: int | None = option(None, "devices to shard the batch over (all)", type=_at_least_1)
    progress: bool | None = option(None, "progress bar (default: only on a terminal)", type=bool)
    tensorboard: bool = option(False, "also write TensorBoard events")


def _option_metadata(cls: type, name: str) -> Any:
    """The ``option`` metadata of field ``name``: the nearest class in ``cls``'s MRO that
    declared it with ``option`` (a subclass may redeclare a field with a plain default)."""
    for klass in cls.__mro__:
        field = getattr(klass, "__dataclass_fields__", {}).get(name)
        if field is not None and "help" in field.metadata:
            return field.metadata
    raise TypeError(f"{cls.__name__}.{name}: declare the field with common.option(default, help)")


def parser_for(cls: type, description: str) -> argparse.ArgumentParser:
    """The command line of the ``Config`` dataclass ``cls``: one ``--field-name`` per field,
    with the field's default, plus the multi-host options (``--distributed``, ...)."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    for field in dataclasses.fields(cls):
        meta = _option_metadata(cls, field.name)
        flag = "--" + field.name.replace("_", "-")
        kwargs: dict[str, Any] = {"default": field.default, "help": meta["help"]}
        if meta["type"] is bool or isinstance(field.default, bool):
            kwargs["action"] = (
                "store_true" if field.default is False else argparse.BooleanOptionalAction
            )
        else:
            default_type = type(field.default) if field.default is not None else str
            kwargs["type"] = meta["type"] or default_type
            if meta["choices"] is not None:
                kwargs["choices"] = meta["choices"]
        p.add_argument(flag, **kwargs)
    p.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize() (auto-detected on SLURM, Open MPI "
        "and Cloud TPU; elsewhere give --coordinator, --num-processes, --process-id)",
    )
    p.add_argument("--coordinator", default=None, help="multi-host coordinator HOST:PORT")
    p.add_argument("--num-processes", type=int, default=None, help="multi-host process count")
    p.add_argument("--process-id", type=int, default=None, help="this process's index")
    p.add_argument(
        "--distributed-timeout",
        type=positive_float,
        default=300.0,
        help="seconds to wait for every process to join before giving up",
    )
    return p


def base_parser(
    description: str, helps: dict[str, str] | None = None, **defaults: Any
) -> argparse.ArgumentParser:
    """The options of ``RunConfig``; ``defaults`` overrides their default values and ``helps``
    their help texts, by field name (for scripts that add their own options to a parser rather
    than extend ``RunConfig``, and may mean something else by one, like ``lr`` for SGD)."""
    p = parser_for(RunConfig, description)
    p.set_defaults(**defaults)
    for action in p._actions:  # argparse has no public way to edit an option's help
        if helps and action.dest in helps:
            action.help = helps[action.dest]
    return p


def parse_config(
    cls: type, argv: Sequence[str] | None, description: str, *, multi_process: bool = True
) -> Any:
    """The ``Config`` dataclass ``cls`` filled from ``argv`` (its parser is ``parser_for``),
    checked by ``check_config``; see ``config_from_args`` for the multi-host start. A script
    whose batches are not sliced by process passes ``multi_process=False`` and refuses
    ``--distributed`` (each process would read the whole batch, so the run would depend on the
    layout)."""
    args = parser_for(cls, description).parse_args(argv)
    if not multi_process and args.distributed:
        raise ValueError("--distributed: this experiment runs in one process")
    config = config_from_args(cls, args)
    check_config(config)
    return config


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    """Fills the frozen dataclass ``cls`` from parsed arguments (``--batch-size`` ->
    ``batch_size``); arguments the dataclass does not name are ignored.

    With ``--distributed`` this also joins the multi-process run, which JAX requires before any
    other JAX call; every script calls this first. The processes must agree on their count and
    on every option but ``--process-id`` (``training.distributed.initialize``).
    """
    if getattr(args, "distributed", False):
        distributed.initialize(
            args.coordinator,
            args.num_processes,
            args.process_id,
            timeout=getattr(args, "distributed_timeout", 300.0),
            agree_on={k: v for k, v in vars(args).items() if k != "process_id"},
        )
    elif getattr(args, "coordinator", None) is not None or getattr(args, "num_processes", None):
        raise ValueError("--coordinator and --num-processes need --distributed")
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
    """Runs a script's ``main`` as a command: a ``training.RunError``, a corrupted-checkpoint
    error or the processes of a multi-process run disagreeing (``DistributedError``) is one line
    on stderr and exit status 1, not a traceback; warnings are one line each."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "experiment"
    default_format = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *args, **kwargs: (
        f"{prog}: warning: {message}\n"
    )
    try:
        return main(sys.argv[1:] if argv is None else argv)
    except (training.RunError, training.CorruptCheckpointError, distributed.DistributedError) as e:
        sys.exit(f"{prog}: error: {e}")
    finally:
        warnings.formatwarning = default_format


def local_data_key(seed_key: Array) -> Array:
    """The key of this process's share of the training data: each process draws its own rows,
    so the global batch depends on the process count. A script whose batches must not (the
    adding problem) builds the global batch's rows ``training.distributed.process_rows``
    instead."""
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
    options = CELL_OPTIONS.get(name, lambda hidden: {})(hidden)
    return lstm_jax.cells.CELL_TYPES[name](hidden, **options)


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
    it. In a multi-process run only process 0 writes (the others return the path)."""
    path = os.path.join(config.out, "metrics.json")
    if not distributed.is_writer():
        return path
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

    In a multi-process run only process 0 draws (the others return the path).
    """
    if not distributed.is_writer():
        return path
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
