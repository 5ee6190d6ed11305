"""Trace-time input validation for the public functions.

Every check raises ``TypeError`` or ``ValueError`` whose message starts with the public function's
name, names the argument, and says what it got and what it wanted. Checks look only at shapes,
dtypes and pytree structure, so they cost nothing at run time and work under ``jit``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax.typing import PyTree


def _shape_of(x: Any) -> Any:
    return getattr(x, "shape", type(x).__name__)


def describe(tree: PyTree) -> str:
    leaves = jax.tree_util.tree_map(
        lambda x: (
            f"{jnp.dtype(x.dtype).name}{list(x.shape)}" if hasattr(x, "shape") else type(x).__name__
        ),
        tree,
    )
    return str(leaves)


def check_input_size(owner: str, input_size: Any) -> None:
    if isinstance(input_size, bool) or not isinstance(input_size, int | np.integer):
        raise TypeError(f"{owner}.init: input_size must be a positive int, got {input_size!r}")
    if input_size <= 0:
        raise ValueError(f"{owner}.init: input_size must be a positive int, got {input_size}")


def check_is_array(fn: str, name: str, x: Any) -> None:
    if type(x).__module__.split(".")[0] == "torch":
        raise TypeError(
            f"{fn}: {name} must be a JAX or NumPy array, got a {type(x).__module__}."
            f"{type(x).__name__}; convert it first: jnp.asarray({name}.numpy()) (or "
            f"{name}.detach().cpu().numpy() for a tensor that needs grad or is on a GPU)"
        )
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{fn}: {name} must be an array, got {type(x).__name__}")


def check_floating(fn: str, name: str, x: Any) -> None:
    check_is_array(fn, name, x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{fn}: {name} must have a floating dtype, got {jnp.dtype(x.dtype).name}")


def check_step_input(input_size: int, x: Any, fn: str, name: str = "x") -> None:
    check_floating(fn, name, x)
    if x.ndim < 1:
        raise ValueError(f"{fn}: {name} must have shape [*batch, input], got a scalar")
    if x.shape[-1] != input_size:
        raise ValueError(
            f"{fn}: {name} must have shape [*batch, input] with input={input_size} (from "
            f"params), got shape {tuple(x.shape)}"
        )


def check_sequence(fn: str, xs: Any, time_major: bool, name: str = "xs") -> None:
    check_floating(fn, name, xs)
    if xs.ndim < 2:
        layout = "[time, *batch, input]" if time_major else "[*batch, time, input]"
        raise ValueError(
            f"{fn}: {name} must have shape {layout} (at least 2 dimensions), got shape "
            f"{tuple(xs.shape)}"
        )


def check_bool(fn: str, name: str, value: Any) -> None:
    """Flags must be real bools: ``"no"`` or ``"false"`` would otherwise read as True."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{fn}: {name} must be a bool (True or False), got {value!r}")


def check_float_dtype(fn: str, name: str, dtype: Any, *, allow_none: bool = True) -> None:
    """``dtype`` must name a floating dtype (``jnp.float32``, ``"bfloat16"``, ...)."""
    if dtype is None:
        if allow_none:
            return
        raise TypeError(f"{fn}: {name} must be a floating dtype (float32, bfloat16, ...), got None")
    try:
        resolved = jnp.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"{fn}: {name} must be a floating dtype (float32, bfloat16, ...), got {dtype!r}"
        ) from None
    if not jnp.issubdtype(resolved, jnp.floating):
        raise TypeError(
            f"{fn}: {name} must be a floating dtype (float32, bfloat16, ...), got {resolved.name}"
        )


def check_real(fn: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{fn}: {name} must be a real number, got {value!r}")


def check_key(fn: str, name: str, key: Any) -> None:
    """One PRNG key: a typed key array of shape () or a raw ``uint32[2]`` key."""
    if not hasattr(key, "dtype") or not hasattr(key, "shape"):
        raise TypeError(
            f"{fn}: {name} must be a PRNG key (jax.random.key(0)), got {type(key).__name__}"
        )
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(
                f"{fn}: {name} must be one PRNG key (shape ()), got an array of keys of shape "
                f"{tuple(key.shape)}"
            )
        return
    if key.dtype != jnp.uint32 or tuple(key.shape) != (2,):
        raise TypeError(
            f"{fn}: {name} must be a PRNG key (jax.random.key(0) or a uint32[2] raw key), got "
            f"{jnp.dtype(key.dtype).name}{list(key.shape)}"
        )


def check_seq_lengths(
    fn: str, seq_lengths: Any, batch_shape: tuple[int, ...], name: str = "seq_lengths"
) -> None:
    check_is_array(fn, name, seq_lengths)
    if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
        raise TypeError(
            f"{fn}: {name} must have an integer dtype, got {jnp.dtype(seq_lengths.dtype).name}"
        )
    if tuple(seq_lengths.shape) != tuple(batch_shape):
        raise ValueError(
            f"{fn}: {name} must have shape {tuple(batch_shape)} (the batch dimensions of xs), "
            f"got shape {tuple(seq_lengths.shape)}"
        )
