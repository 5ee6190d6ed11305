"""Jitted train and eval steps built from a user's loss function.

The user writes the model's loss as a pure function::

    def loss_fn(params, batch, key):          # key: uint32[2], fresh every step
        ...
        return loss, {"accuracy": acc}        # or just ``loss``

and ``make_train_step(loss_fn, optimizer)`` returns ``train_step(state, batch) -> (state,
metrics)``. ``metrics`` always holds ``loss`` and ``grad_norm`` (the global norm *before*
clipping, the number to watch for explosions), plus ``learning_rate`` when a schedule is given,
plus whatever the loss function reported.

A step whose metrics or gradients are not finite, or whose update turns a finite parameter or
optimiser-state value non-finite (a finite loss and gradient times a huge learning rate can
overflow),
returns the state it was given, unchanged, and ``metrics["finite"] == False``: a NaN or Inf
never reaches the parameters, so the state the loop holds (and checkpoints) is always the last
good one. The check is one fused reduction on the device. The loop turns the flag into an
error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from lstm_jax.training.state import TrainState
from lstm_jax.typing import Array, PyTree

LossFn = Callable[[PyTree, PyTree, Array], Any]
MetricFn = Callable[[PyTree, PyTree], Mapping[str, Array]]
RESERVED_METRICS = ("loss", "grad_norm", "learning_rate", "finite")


def _split_loss_output(fn: str, out: Any) -> tuple[Array, dict[str, Array]]:
    """``loss`` or ``(loss, metrics)`` -> ``(loss, metrics)``, checked."""
    if isinstance(out, tuple):
        if len(out) != 2 or not isinstance(out[1], Mapping):
            raise TypeError(
                f"{fn}: loss_fn must return a scalar loss or (loss, dict of scalar metrics), "
                f"got a tuple of {len(out)} elements"
            )
        loss, aux = out
    else:
        loss, aux = out, {}
    is_scalar = hasattr(loss, "shape") and loss.shape == ()
    if not is_scalar or not jnp.issubdtype(loss.dtype, jnp.floating):
        got = f"{loss.dtype}{list(loss.shape)}" if hasattr(loss, "shape") else type(loss).__name__
        raise TypeError(f"{fn}: loss_fn must return a floating scalar loss, got {got}")
    check_metrics(fn, aux, "the metrics returned by loss_fn", reserved=True)
    return loss, dict(aux)


def check_metrics(fn: str, metrics: Any, what: str, *, reserved: bool = False) -> None:
    """``metrics`` must be a dict from str to scalar arrays (not using a reserved name)."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"{fn}: {what} must be a dict of scalars, got {type(metrics).__name__}")
    for name, value in metrics.items():
        if not isinstance(name, str):
            raise TypeError(f"{fn}: {what} must have str keys, got {name!r}")
        if reserved and name in RESERVED_METRICS:
            raise ValueError(
                f"{fn}: {what} may not use the reserved names {RESERVED_METRICS}, got {name!r}"
            )
        if not hasattr(value, "shape") or tuple(value.shape) != ():
            shape = getattr(value, "shape", type(value).__name__)
            raise ValueError(f"{fn}: {what}[{name!r}] must be a scalar, got shape {shape}")


def _all_finite(tree: PyTree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves))


def _stays_finite(old: PyTree, new: PyTree) -> Array:
    """One boolean: no floating value finite in ``old`` is non-finite in ``new``. An Inf that
    was there before is allowed (``optax.contrib.reduce_on_plateau`` starts from one)."""
    leaves = [
        jnp.all(jnp.isfinite(n) | ~jnp.isfinite(o))
        for o, n in zip(jax.tree_util.tree_leaves(old), jax.tree_util.tree_leaves(new), strict=True)
        if jnp.issubdtype(jnp.result_type(n), jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_train_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    learning_rate: optax.Schedule | None = None,
    state_sharding: PyTree | None = None,
    donate: bool = False,
    jit: bool = True,
) -> Callable[[TrainState, PyTree], tuple[TrainState, dict[str, Array]]]:
    """Builds ``train_step(state, batch) -> (state, metrics)``.

    Args:
      loss_fn: ``loss_fn(params, batch, key) -> loss`` or ``-> (loss, metrics)``, a pure
        function; ``loss`` a floating scalar, ``metrics`` a dict of scalars (names other than
        ``loss``, ``grad_norm``, ``learning_rate``, ``finite``).
      optimizer: the Optax transformation the state was created with.
      learning_rate: the schedule in ``optimizer``, reported as ``metrics["learning_rate"]``.
      state_sharding: a pytree of ``jax.sharding.Sharding`` matching the state (see
        ``training.sharding.state_shardings``); the new state is constrained to it so the
        parameters keep their layout across steps. None leaves placement to the compiler.
      donate: donate the incoming state's buffers to the new state (saves memory on
        accelerators; the caller must not reuse the old state).
      jit: compile the step (switch off only to debug).

    Returns:
      ``train_step``: ``state`` a ``TrainState``, ``batch`` any pytree ``loss_fn`` accepts;
      returns the new state and ``metrics``, a dict of scalars.
    """
    fn = "make_train_step"
    if not callable(loss_fn):
        raise TypeError(f"{fn}: loss_fn must be callable, got {type(loss_fn).__name__}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"{fn}: optimizer must be an optax.GradientTransformation, got "
            f"{type(optimizer).__name__}"
        )
    if learning_rate is not None and not callable(learning_rate):
        raise TypeError(
            f"{fn}: learning_rate must be an optax schedule (a callable) or None, got "
            f"{learning_rate!r}"
        )

    def loss_and_aux(params, batch, key):
        return _split_loss_output(fn, loss_fn(params, batch, key))

    def train_step(state: TrainState, batch: PyTree) -> tuple[TrainState, dict[str, Array]]:
        if not isinstance(state, TrainState):
            raise TypeError(f"train_step: state must be a TrainState, got {type(state).__name__}")
        key, step_key = jax.random.split(state.key)
        (loss, aux), grads = jax.value_and_grad(loss_and_aux, has_aux=True)(
            state.params, batch, step_key
        )
        # Optax mixes Python floats with its int32 step counters (``b1 ** count``), which the
        # strict promotion mode some users (and our tests) run in rejects; the scope is only
        # the optimiser's own code, the user's loss stays under the caller's setting.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            lr = None if learning_rate is None else learning_rate(state.step)
        metrics = {"loss": loss, **aux, "grad_norm": optax.tree.norm(grads)}
        if lr is not None:
            metrics["learning_rate"] = jnp.asarray(lr, jnp.float32)
        finite = (
            _all_finite(metrics)
            & _all_finite(grads)
            & _stays_finite((state.params, state.opt_state), (params, opt_state))
        )
        new_state = TrainState(state.step + 1, params, opt_state, key)
        new_state = jax.tree_util.tree_map(
            lambda new, old: jnp.where(finite, new, old), new_state, state
        )
        if state_sharding is not None:
            new_state = jax.lax.with_sharding_constraint(new_state, state_sharding)
        metrics["finite"] = finite
        return new_state, metrics

    if not jit:
        return train_step
    return jax.jit(train_step, donate_argnums=(0,) if donate else ())


def make_eval_step(
    metric_fn: MetricFn, *, jit: bool = True
) -> Callable[[PyTree, PyTree], dict[str, Array]]:
    """Builds ``eval_step(params, batch) -> metrics``.

    Args:
      metric_fn: ``metric_fn(params, batch) -> dict of scalar arrays``, pure.
      jit: compile the step.

    Returns:
      ``eval_step``, with the metrics checked to be a dict of scalars at trace time.
    """
    fn = "make_eval_step"
    if not callable(metric_fn):
        raise TypeError(f"{fn}: metric_fn must be callable, got {type(metric_fn).__name__}")

    def eval_step(params: PyTree, batch: PyTree) -> dict[str, Array]:
        metrics = metric_fn(params, batch)
        check_metrics("eval_step", metrics, "the metrics returned by metric_fn")
        return dict(metrics)

    return jax.jit(eval_step) if jit else eval_step
