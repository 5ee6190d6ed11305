"""The train state: everything a training run needs to continue, as one pytree.

``TrainState(step, params, opt_state, key)`` holds arrays only. The optimiser itself (an Optax
``GradientTransformation``, a pair of pure functions) is not part of the state: it is given to
``make_train_step``, so the state can be jitted, sharded and checkpointed like any pytree.

The PRNG key is kept as raw ``uint32[2]`` key data (the form ``jax.random.PRNGKey`` returns)
rather than a typed key, so a checkpoint holds a plain integer array and a restored run draws
the same numbers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lstm_jax.typing import Array, PyTree


class TrainState(NamedTuple):
    """One training run's state.

    Fields:
      step: ``int32[]``, the number of optimiser updates applied so far.
      params: the model's parameter pytree.
      opt_state: the optimiser's state for ``params``.
      key: ``uint32[2]``, the key the next step splits its randomness (dropout, ...) from.
    """

    step: Array
    params: PyTree
    opt_state: PyTree
    key: Array


def as_raw_key(key: Any, fn: str, name: str = "key") -> Array:
    """Returns ``key`` as raw ``uint32[2]`` key data; accepts typed keys and raw keys."""
    if isinstance(key, int) and not isinstance(key, bool):
        return jax.random.PRNGKey(key)
    if not hasattr(key, "dtype") or not hasattr(key, "shape"):
        raise TypeError(
            f"{fn}: {name} must be a PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)) "
            f"or an int seed, got {type(key).__name__}"
        )
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    if key.dtype != jnp.uint32 or tuple(key.shape) != (2,):
        raise ValueError(
            f"{fn}: {name} must be a single PRNG key (uint32[2] key data or a typed scalar key), "
            f"got {key.dtype}{list(key.shape)}"
        )
    return key


def create_train_state(
    params: PyTree, optimizer: optax.GradientTransformation, key: Any
) -> TrainState:
    """Builds the state at step 0.

    Args:
      params: the model's parameter pytree (arrays with floating dtypes).
      optimizer: an Optax ``GradientTransformation`` (for example from ``make_optimizer``).
      key: a PRNG key (typed or raw) or an int seed; the source of the per-step randomness.

    Returns:
      ``TrainState(step=0, params, optimizer.init(params), key)``.
    """
    fn = "create_train_state"
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"{fn}: optimizer must be an optax.GradientTransformation, got "
            f"{type(optimizer).__name__}"
        )
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise ValueError(f"{fn}: params must contain at least one array, got {params!r}")
    for leaf in leaves:
        if not hasattr(leaf, "dtype") or not jnp.issubdtype(leaf.dtype, jnp.floating):
            got = getattr(leaf, "dtype", type(leaf).__name__)
            raise TypeError(f"{fn}: params must hold floating arrays only, got a leaf of {got}")
    with jax.numpy_dtype_promotion("standard"):  # Optax's own code; see training.steps
        opt_state = optimizer.init(params)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=opt_state,
        key=as_raw_key(key, fn),
    )
