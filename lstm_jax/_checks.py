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


def _describe(tree: PyTree) -> str:
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
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{fn}: {name} must be an array, got {type(x).__name__}")


def check_floating(fn: str, name: str, x: Any) -> None:
    check_is_array(fn, name, x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{fn}: {name} must have a floating dtype, got {jnp.dtype(x.dtype).name}")


def check_params(cell: Any, params: PyTree, fn: str, name: str = "params") -> None:
    """``params`` must have the structure, shapes and floating dtypes of ``cell.init``."""
    w_ih = getattr(params, "w_ih", None)
    if w_ih is None or not hasattr(w_ih, "shape") or len(w_ih.shape) != 2:
        raise TypeError(
            f"{fn}: {name} must be the parameters of {_cell_repr(cell)} (as returned by its "
            f"init), got {_describe(params)}"
        )
    input_size = int(w_ih.shape[0])
    expected = cell.expected_param_shapes(input_size)
    got_def = jax.tree_util.tree_structure(params)
    want_def = jax.tree_util.tree_structure(expected)
    if got_def != want_def:
        raise TypeError(
            f"{fn}: {name} has the wrong structure for {_cell_repr(cell)}: got "
            f"{_describe(params)}, expected {_describe(expected)}"
        )
    for got, want in zip(
        jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(expected), strict=True
    ):
        if tuple(got.shape) != tuple(want.shape) or not jnp.issubdtype(got.dtype, jnp.floating):
            raise ValueError(
                f"{fn}: {name} does not fit {_cell_repr(cell)} with input size {input_size}: "
                f"got {_describe(params)}, expected {_describe(expected)}"
            )


def check_step_input(cell: Any, params: PyTree, x: Any, fn: str, name: str = "x") -> None:
    check_floating(fn, name, x)
    if x.ndim < 1:
        raise ValueError(f"{fn}: {name} must have shape [*batch, input], got a scalar")
    input_size = cell.input_size(params)
    if x.shape[-1] != input_size:
        raise ValueError(
            f"{fn}: {name} must have shape [*batch, input] with input={input_size} (from "
            f"params), got shape {tuple(x.shape)}"
        )


def check_carry(
    cell: Any, carry: PyTree, batch_shape: tuple[int, ...], fn: str, name: str = "carry"
) -> None:
    expected = jax.eval_shape(lambda: cell.initial_carry(tuple(batch_shape)))
    if jax.tree_util.tree_structure(carry) != jax.tree_util.tree_structure(expected):
        raise TypeError(
            f"{fn}: {name} has the wrong structure for {_cell_repr(cell)}: got "
            f"{_describe(carry)}, expected {_describe(expected)} "
            f"(from cell.initial_carry({tuple(batch_shape)}))"
        )
    for got, want in zip(
        jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(expected), strict=True
    ):
        check_is_array(fn, name, got)
        if tuple(got.shape) != tuple(want.shape):
            raise ValueError(
                f"{fn}: {name} must have leaves of shape {tuple(want.shape)} "
                f"([*batch, hidden]), got {_describe(carry)}"
            )
        if not jnp.issubdtype(got.dtype, jnp.floating):
            raise TypeError(f"{fn}: {name} must be floating, got {_describe(carry)}")


def check_sequence(fn: str, xs: Any, time_major: bool, name: str = "xs") -> None:
    check_floating(fn, name, xs)
    if xs.ndim < 2:
        layout = "[time, *batch, input]" if time_major else "[*batch, time, input]"
        raise ValueError(
            f"{fn}: {name} must have shape {layout} (at least 2 dimensions), got shape "
            f"{tuple(xs.shape)}"
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


def check_cell(fn: str, cell: Any, name: str = "cell") -> None:
    from lstm_jax.cells.base import Cell

    if not isinstance(cell, Cell):
        raise TypeError(
            f"{fn}: {name} must be an lstm_jax cell (lstm_jax.lstm(...), gru(...), ...), got "
            f"{type(cell).__name__}"
        )


def _cell_repr(cell: Any) -> str:
    return f"{cell.name}(hidden_size={cell.hidden_size})"
