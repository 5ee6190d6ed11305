"""The training loop: steps, metric logging, evaluation, checkpoints, resume and the NaN guard.

Batches come from ``batch_fn(step) -> batch``, a function of the step number alone. That is what
makes resuming exact: after restoring the checkpoint of step N, the loop asks for batch N, the
same batch the uninterrupted run would have seen (an iterator would have to be checkpointed
too). Synthetic tasks draw batch ``s`` from ``jax.random.fold_in(data_key, s)``; a dataset can
index its (shuffled) epoch with ``s``.

Every step's metrics are fetched to the host and checked: a non-finite metric or gradient, or
an update that made the parameters or optimiser state non-finite, stops the run with
``NonFiniteError`` naming the step and the metric. The train step never applies such an update
(see ``training.steps``), and the loop saves only after a step passed the check, so the newest
checkpoint on disk is always a good one.

Train records average ``log_every`` steps, always the same ones: a checkpoint saves the open
window's sums with the state, so a run resumed between two records logs the numbers an
uninterrupted run logs. A finished run that is run again only re-evaluates; its final eval
record replaces the one in the log instead of being appended a second time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from lstm_jax.training.checkpoints import LOOP_KEY, Checkpointer
from lstm_jax.training.logging import MetricLogger
from lstm_jax.training.metrics import MetricSums, compute_metrics, init_metrics, update_metrics
from lstm_jax.training.progress import ProgressBar
from lstm_jax.training.sharding import shard_batch
from lstm_jax.training.state import TrainState
from lstm_jax.typing import PyTree

# NonFiniteError.metric when the loss and gradients were finite but the update was not.
UPDATE = "update"


class NonFiniteError(FloatingPointError):
    """A train step produced a NaN or Inf.

    Attributes:
      step: the state's step when the bad update was computed (the state is left there).
      metric: the name of the first non-finite metric, or ``"update"`` when the loss and the
        gradients were finite and the updated parameters or optimiser state were not.
      value: its value.
      checkpoint_step: the newest checkpoint on disk (the last good one), or None.
    """

    def __init__(
        self, step: int, metric: str, value: float, checkpoint_step: int | None, where: str
    ) -> None:
        self.step, self.metric, self.value = step, metric, value
        self.checkpoint_step = checkpoint_step
        kept = (
            f"the last good checkpoint is step {checkpoint_step} in {where}"
            if checkpoint_step is not None
            else "no checkpoint was saved"
        )
        what = (
            f"the update of step {step} made the parameters or optimiser state non-finite "
            f"(the loss and gradients were finite)"
            if metric == UPDATE
            else f"non-finite {metric} = {value} at step {step}"
        )
        super().__init__(f"train: {what}; training stopped without applying that update; {kept}")


def _batch_rows(batch: PyTree) -> int:
    leaves = jax.tree_util.tree_leaves(batch)
    return int(leaves[0].shape[0]) if leaves and getattr(leaves[0], "ndim", 0) else 1


def _offending_metric(metrics: dict[str, Any]) -> tuple[str, float]:
    order = ["loss"] + [k for k in metrics if k not in ("loss", "grad_norm", "finite")]
    for name in [*order, "grad_norm"]:
        if name in metrics and not math.isfinite(float(metrics[name])):
            return name, float(metrics[name])
    # A non-finite gradient makes grad_norm non-finite, so what is left is the update.
    return UPDATE, float("nan")


def _window_to_json(
    acc: MetricSums, start: int, steps: int, rows: int, seconds: float, log_every: int
) -> dict[str, Any]:
    """The open log window, for the checkpoint (float32 sums round-trip exactly as floats)."""
    sums, weight = jax.device_get((acc.sums, acc.weight))
    return {
        "log_every": log_every,
        "start": start,
        "steps": steps,
        "rows": rows,
        "seconds": seconds,
        "weight": float(weight),
        "sums": {k: float(v) for k, v in sums.items()},
    }


def _window_from_json(
    saved: Any, step: int, log_every: int
) -> tuple[MetricSums, int, int, float] | None:
    """``(acc, steps, rows, seconds)`` of the window open at ``step``, if the checkpoint has it
    for this ``log_every``."""
    if not isinstance(saved, dict) or saved.get("log_every") != log_every:
        return None
    if saved.get("start", -1) + saved.get("steps", -1) != step:
        return None
    sums = {k: jnp.asarray(v, jnp.float32) for k, v in saved["sums"].items()}
    acc = MetricSums(sums, jnp.asarray(saved["weight"], jnp.float32))
    return acc, int(saved["steps"]), int(saved["rows"]), float(saved["seconds"])


def train(
    state: TrainState,
    train_step: Callable[[TrainState, PyTree], tuple[TrainState, dict[str, Any]]],
    batch_fn: Callable[[int], PyTree],
    *,
    num_steps: int,
    checkpointer: Checkpointer | None = None,
    resume: bool = True,
    logger: MetricLogger | None = None,
    log_every: int = 100,
    eval_fn: Callable[[PyTree], dict[str, Any]] | None = None,
    eval_every: int = 0,
    mesh: Mesh | None = None,
    progress: bool | None = None,
) -> tuple[TrainState, list[dict[str, Any]]]:
    """Trains until ``state.step == num_steps``.

    Args:
      state: the initial state (placed on the mesh already, when there is one); also the
        target a checkpoint is restored into.
      train_step: from ``make_train_step``.
      batch_fn: ``step -> batch``; the batch's leaves have a leading batch axis.
      num_steps: the step to stop at (counted from 0, resumed runs included).
      checkpointer: saves every ``checkpointer.save_every`` steps and at the end.
      resume: start from the checkpointer's latest checkpoint when there is one.
      logger: receives the mean train metrics (plus ``steps_per_s`` and ``examples_per_s``)
        every ``log_every`` steps and the eval metrics (split ``"eval"``). The first train
        record of a run also has ``initial_loss``, the loss of step 0 (before any update), the
        reference a divergence check compares the final loss with.
      log_every: steps per logged train record, > 0.
      eval_fn: ``params -> dict of floats``, run every ``eval_every`` steps and at the end.
      eval_every: 0 evaluates only at the end.
      mesh: when given, batches are sharded across it with ``shard_batch``.
      progress: draw a progress bar (None: only on a terminal).

    Returns:
      ``(state, history)``: the final state and every logged record (train and eval) as
      dicts with ``step`` and ``split``.

    Raises:
      NonFiniteError: a step produced a NaN or Inf.
    """
    fn = "train"
    if not isinstance(state, TrainState):
        raise TypeError(f"{fn}: state must be a TrainState, got {type(state).__name__}")
    for name, value, low in (
        ("num_steps", num_steps, 0),
        ("log_every", log_every, 1),
        ("eval_every", eval_every, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{fn}: {name} must be an int >= {low}, got {value!r}")
    if not callable(batch_fn):
        raise TypeError(f"{fn}: batch_fn must be a callable step -> batch, got {batch_fn!r}")

    window, initial_loss = None, None
    if checkpointer is not None and resume and checkpointer.latest_step() is not None:
        state = checkpointer.restore(state)
        restored = int(jax.device_get(state.step))
        loop_meta = (checkpointer.metadata(restored) or {}).get(LOOP_KEY) or {}
        window = _window_from_json(loop_meta.get("window"), restored, log_every)
        if window is not None:
            initial_loss = loop_meta.get("initial_loss")
    start = int(jax.device_get(state.step))
    if logger is not None:
        # A finished run run again evaluates again: its final eval record is replaced.
        logger.truncate_after(start, drop_at_step=("eval",) if start >= num_steps else ())
    history: list[dict[str, Any]] = []

    def record(step: int, metrics: dict[str, Any], split: str) -> None:
        history.append({"step": step, "split": split, **metrics})
        if logger is not None:
            logger.log(step, metrics, split)

    def run_eval(step: int) -> None:
        if eval_fn is not None:
            record(step, {k: float(v) for k, v in eval_fn(state.params).items()}, "eval")

    def new_window() -> tuple[Any, float, int, int]:
        return init_metrics(), time.perf_counter(), 0, 0

    acc, window_start, window_rows, window_steps = new_window()
    if window is not None:
        acc, window_steps, window_rows, seconds = window
        window_start -= seconds
    # Only process 0 draws: one bar per run, not one per process.
    enabled = progress and jax.process_index() == 0
    with ProgressBar(num_steps, initial=start, enabled=enabled) as bar:
        for step in range(start, num_steps):
            batch = batch_fn(step)
            if mesh is not None:
                batch = shard_batch(batch, mesh)
            # After sharding a leaf is the global array: every process counts the global batch.
            rows = _batch_rows(batch)
            state, metrics = train_step(state, batch)
            metrics = jax.device_get(metrics)
            if not bool(metrics["finite"]):
                name, value = _offending_metric(metrics)
                where = checkpointer.directory if checkpointer is not None else ""
                last = checkpointer.latest_step() if checkpointer is not None else None
                raise NonFiniteError(step, name, value, last, where)
            if step == 0:
                initial_loss = float(metrics["loss"])
            scalars = {k: np.asarray(v) for k, v in metrics.items() if k != "finite"}
            acc = update_metrics(acc, scalars, rows)
            window_rows, window_steps = window_rows + rows, window_steps + 1
            done = step + 1
            if done % log_every == 0 or done == num_steps:
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                means = compute_metrics(acc)
                means["steps_per_s"] = window_steps / elapsed
                means["examples_per_s"] = window_rows / elapsed
                if initial_loss is not None:
                    means["initial_loss"] = initial_loss
                    initial_loss = None
                record(done, means, "train")
                bar.update(
                    done,
                    loss=means["loss"],
                    steps_per_s=means["steps_per_s"],
                    examples_per_s=means["examples_per_s"],
                )
                acc, window_start, window_rows, window_steps = new_window()
            if eval_every and done % eval_every == 0 and done != num_steps:
                run_eval(done)
            if checkpointer is not None and checkpointer.is_due(done):
                open_window = _window_to_json(
                    acc,
                    done - window_steps,
                    window_steps,
                    window_rows,
                    time.perf_counter() - window_start,
                    log_every,
                )
                loop_meta = {"window": open_window, "initial_loss": initial_loss}
                checkpointer.save(state, metadata={LOOP_KEY: loop_meta})
    run_eval(int(jax.device_get(state.step)))
    if checkpointer is not None:
        checkpointer.save(state)
        checkpointer.wait()
    return state, history
