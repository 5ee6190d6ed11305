"""What every cell shares: the interface, dtype policy and the small numerical helpers.

A cell is a frozen dataclass holding static configuration (sizes, initialisers, dtypes) and
pure methods over a parameter pytree. Cells are registered as static pytrees (no leaves), so
they may be passed straight through ``jax.jit``; two cells with equal configuration are equal.

Every cell splits one time step into two parts:

* ``project_inputs(params, x)``: ``x @ W_ih + b`` for any number of leading axes. The sequence
  code may apply it to a whole ``[time, *batch, input]`` sequence at once (the cuDNN way) or
  inside the loop, one step at a time.
* ``recur(params, carry, xp)``: the recurrence given the projected input of one step.

``step(params, carry, x) == recur(params, carry, project_inputs(params, x))``.

Dtype policy: parameters are stored in ``param_dtype``; matmuls run in the compute ``dtype``
(the parameters' dtype when ``None``) and accumulate in at least float32; gate arithmetic runs
in the accumulation dtype; the carry (``h`` and ``c``) is kept in ``carry_dtype`` (the parameter
dtype when ``None``), so bf16 compute with float32 parameters keeps a float32 cell state.
Outputs ``y`` are in the compute dtype.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax.typing import Array, DType, PyTree


def check_hidden_size(owner: str, hidden_size: Any) -> None:
    if isinstance(hidden_size, bool) or not isinstance(hidden_size, int | np.integer):
        raise TypeError(f"{owner}: hidden_size must be a positive int, got {hidden_size!r}")
    if hidden_size <= 0:
        raise ValueError(f"{owner}: hidden_size must be a positive int, got {hidden_size}")


def check_batch_shape(owner: str, batch_shape: Any) -> tuple[int, ...]:
    if isinstance(batch_shape, int | np.integer):
        batch_shape = (int(batch_shape),)
    if isinstance(batch_shape, str | bytes):
        raise TypeError(f"{owner}: batch_shape must be a tuple of ints, got {batch_shape!r}")
    try:
        shape = tuple(int(d) for d in batch_shape)
    except TypeError:
        raise TypeError(
            f"{owner}: batch_shape must be a tuple of ints, got {batch_shape!r}"
        ) from None
    if any(d < 0 for d in shape):
        raise ValueError(f"{owner}: batch_shape must be non-negative, got {shape}")
    return shape


def expand_to(v: Array, ndim: int) -> Array:
    """Reshapes a ``[features]`` vector to broadcast against ``[*batch, features]`` explicitly
    (the test suite runs with implicit rank promotion switched off)."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def accumulation_dtype(compute_dtype: DType) -> DType:
    """Matmuls accumulate and gates are computed in at least float32."""
    dtype = jnp.dtype(compute_dtype)
    return dtype if dtype.itemsize >= 4 else jnp.dtype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class Cell:
    """Base class of all cells; see the module docstring for the contract."""

    hidden_size: int
    dtype: DType | None = None
    param_dtype: DType = jnp.float32
    carry_dtype: DType | None = None

    num_gates: ClassVar[int]
    name: ClassVar[str]

    def __post_init__(self) -> None:
        check_hidden_size(self.name, self.hidden_size)

    # ---- interface -----------------------------------------------------------------------
    def init(self, key: Array, input_size: int) -> PyTree:  # pragma: no cover - abstract
        raise NotImplementedError

    def initial_carry(self, batch_shape: tuple[int, ...] | int = ()) -> PyTree:
        raise NotImplementedError  # pragma: no cover - abstract

    def project_inputs(self, params: PyTree, x: Array) -> Array:
        """``x: [..., input]`` -> ``[..., gates]``: ``x @ W_ih + b`` in the accumulation dtype."""
        cdt = self.compute_dtype(params)
        xp = dense(x, params.w_ih, cdt)
        if params.b is not None:
            xp = xp + expand_to(params.b.astype(xp.dtype), xp.ndim)
        return xp

    def recur(self, params: PyTree, carry: PyTree, xp: Array) -> tuple[PyTree, Array]:
        """One step of the recurrence given ``xp = project_inputs(params, x)``."""
        carry, y, _ = self.recur_with_gates(params, carry, xp)
        return carry, y

    def recur_with_gates(
        self, params: PyTree, carry: PyTree, xp: Array
    ) -> tuple[PyTree, Array, NamedTuple]:
        """``recur`` that also returns the gate activations (a NamedTuple, ``[*batch, hidden]``)."""
        hh = self.recurrent_projection(params, carry)
        return self.recur_from_projections(params, carry, xp, hh)

    # The recurrence split around its one recurrent matmul, ``hh = h @ w_hh``. Cells whose step
    # has this shape (all but the original-form GRU) let the sequence code run the backward pass
    # the cuDNN way: only ``hh``'s cotangent is propagated step by step, and the weight
    # gradients become single large matmuls over all time steps (see lstm_jax/scan_vjp.py).
    splits_recurrence: ClassVar[bool] = True
    # True when ``recur_from_projections`` reads xp and hh only through their sum.
    projections_add: ClassVar[bool] = False
    # Parameters used by ``recur_from_projections`` other than w_ih, w_hh and b (peepholes,
    # the GRU's b_hn): their gradients are accumulated step by step.
    step_param_fields: ClassVar[tuple[str, ...]] = ()

    def carry_hidden(self, carry: PyTree) -> Array:
        """The part of the carry that multiplies ``w_hh``."""
        return carry

    def recurrent_projection(self, params: PyTree, carry: PyTree) -> Array:
        """``h @ w_hh``: ``[*batch, gates]`` in the accumulation dtype."""
        return dense(self.carry_hidden(carry), params.w_hh, self.compute_dtype(params))

    def recur_from_projections(
        self, params: PyTree, carry: PyTree, xp: Array, hh: Array
    ) -> tuple[PyTree, Array, NamedTuple]:  # pragma: no cover - abstract
        """One step given ``xp = x @ w_ih + b`` and ``hh = h @ w_hh``; must not read ``w_ih``,
        ``w_hh`` or ``b``."""
        raise NotImplementedError

    def step(self, params: PyTree, carry: PyTree, x: Array) -> tuple[PyTree, Array]:
        """One time step.

        Args:
          params: this cell's parameters (see ``init``).
          carry: the state after the previous step, leaves ``[*batch, hidden]``.
          x: ``[*batch, input]``, any number (zero included) of batch dimensions.

        Returns:
          ``(carry, y)`` with the new carry and ``y: [*batch, hidden]``.
        """
        from lstm_jax import _checks

        _checks.check_params(self, params, "step")
        _checks.check_step_input(self, params, x, "step")
        _checks.check_carry(self, carry, x.shape[:-1], "step")
        return self.recur(params, carry, self.project_inputs(params, x))

    # ---- helpers shared by the subclasses --------------------------------------------------
    def compute_dtype(self, params: PyTree) -> DType:
        return jnp.dtype(self.dtype) if self.dtype is not None else params.w_hh.dtype

    def resolved_carry_dtype(self) -> DType:
        return jnp.dtype(self.carry_dtype if self.carry_dtype is not None else self.param_dtype)

    def input_size(self, params: PyTree) -> int:
        return int(params.w_ih.shape[0])

    def zeros_state(self, batch_shape: tuple[int, ...] | int) -> Array:
        shape = check_batch_shape(f"{self.name}.initial_carry", batch_shape)
        return jnp.zeros((*shape, self.hidden_size), self.resolved_carry_dtype())

    def output(self, h: Array, params: PyTree) -> Array:
        return h.astype(self.compute_dtype(params))

    def expected_param_shapes(self, input_size: int) -> PyTree:
        """The parameter pytree of ``init(key, input_size)`` as ShapeDtypeStructs."""
        return jax.eval_shape(lambda k: self.init(k, input_size), jax.random.key(0))


def dense(x: Array, w: Array, compute_dtype: DType) -> Array:
    """``x @ w`` over the last axis of ``x``, inputs cast to ``compute_dtype``, accumulated in at
    least float32."""
    return jnp.matmul(
        x.astype(compute_dtype),
        w.astype(compute_dtype),
        preferred_element_type=accumulation_dtype(compute_dtype),
    )


def register_cell(cls: type) -> type:
    """Makes a cell class a frozen dataclass and a static (leafless) pytree."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    jax.tree_util.register_static(cls)
    return cls
