"""Training utilities on Optax: train state, jitted steps, checkpoints, sharding, logging, loop.

A typical run::

    from lstm_jax import training as T

    opt = T.make_optimizer(1e-3, clip_norm=1.0)
    state = T.create_train_state(params, opt, key=0)
    step = T.make_train_step(loss_fn, opt)             # loss_fn(params, batch, key)
    with T.Checkpointer(out / "ckpt", save_every=500, keep=3) as ckpt, T.MetricLogger(out) as log:
        state, history = T.train(state, step, batch_fn, num_steps=10_000,
                                 checkpointer=ckpt, logger=log)

``run_directory`` makes that directory safe to resume and to run again: ``RunLock``,
``check_resume`` (the checkpoints are of this configuration), ``clear_run`` and
``read_history`` (the whole run's records, read back from ``log.jsonl``).

Importing this package pulls in Orbax; the core (``lstm_jax``) does not import it.
"""

from lstm_jax.training import distributed
from lstm_jax.training.checkpoints import (
    Checkpointer,
    CorruptCheckpointError,
    CorruptCheckpointWarning,
)
from lstm_jax.training.logging import MetricLogger, read_jsonl
from lstm_jax.training.loop import NonFiniteError, train
from lstm_jax.training.metrics import (
    MetricSums,
    compute_metrics,
    evaluate,
    init_metrics,
    update_metrics,
)
from lstm_jax.training.optim import OPTIMIZERS, SCHEDULES, learning_rate_schedule, make_optimizer
from lstm_jax.training.progress import ProgressBar
from lstm_jax.training.run_directory import (
    ConfigMismatchError,
    RunError,
    RunLock,
    RunLockedError,
    check_resume,
    clear_run,
    config_differences,
    read_history,
)
from lstm_jax.training.sharding import (
    DATA_AXIS,
    batch_sharding,
    make_mesh,
    place_state,
    replicated,
    shard_batch,
    state_shardings,
)
from lstm_jax.training.state import TrainState, create_train_state
from lstm_jax.training.steps import make_eval_step, make_train_step

__all__ = [
    "DATA_AXIS",
    "OPTIMIZERS",
    "SCHEDULES",
    "Checkpointer",
    "ConfigMismatchError",
    "CorruptCheckpointError",
    "CorruptCheckpointWarning",
    "MetricLogger",
    "MetricSums",
    "NonFiniteError",
    "ProgressBar",
    "RunError",
    "RunLock",
    "RunLockedError",
    "TrainState",
    "batch_sharding",
    "check_resume",
    "clear_run",
    "compute_metrics",
    "config_differences",
    "create_train_state",
    "distributed",
    "evaluate",
    "init_metrics",
    "learning_rate_schedule",
    "make_eval_step",
    "make_mesh",
    "make_optimizer",
    "make_train_step",
    "place_state",
    "read_history",
    "read_jsonl",
    "replicated",
    "shard_batch",
    "state_shardings",
    "train",
    "update_metrics",
]
