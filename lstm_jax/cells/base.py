"""The cell protocol: what a cell is, the dtype policy, and the registry of cell types.

A cell is a frozen dataclass of static configuration (sizes, initialisers, dtypes) with pure
methods over a parameter pytree. Decorated with ``@register_cell`` it becomes a static pytree
(so it passes straight through ``jax.jit``; equal configurations compare and hash equal) and
is registered by its ``name``, which is all that checkpoints and the Flax layers need to find
it. A new cell is one file that writes three methods:

* ``init(key, input_size) -> params``: a NamedTuple of arrays;
* ``initial_carry(batch_shape) -> carry``: the state before the first step (the base class
  gives zeros ``[*batch, hidden]`` for a one-array carry);
* ``recur(params, carry, xp, hh) -> (carry, y, gates)``: one step split around its recurrent
  matmul, given ``xp = project_inputs(params, x)`` and ``hh = recurrent_projection(params,
  carry)``. ``gates`` is a NamedTuple of activations for introspection, or None.

The two projections default to ``x @ w_ih + b`` and ``h @ w_hh`` (``h`` is ``carry.h`` for a
NamedTuple carry, else the carry itself); a cell with other names or another split overrides
them. Nothing else is declared: the sequence code finds out by tracing ``recur`` which
parameters it reads and whether it reads ``xp`` and ``hh`` only through their sum, so no list
of fields can be forgotten (``lstm_jax._split``).

``step(params, carry, x) == recur(params, carry, project_inputs(params, x),
recurrent_projection(params, carry))[:2]``.

Dtype policy: parameters are stored in ``param_dtype``; matmuls run in the compute ``dtype``
(the parameters' dtype when ``None``) and accumulate in at least float32; gate arithmetic runs
in the accumulation dtype; the carry is kept in ``carry_dtype`` (the parameter dtype when
``None``), so bf16 compute with float32 parameters keeps a float32 cell state. Outputs ``y``
are in the compute dtype.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import _checks
from lstm_jax.typing import Array, DType, PyTree

CELL_TYPES: dict[str, type[Cell]] = {}


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


def check_config_fields(cell: Any) -> None:
    """Checks every configuration field by its annotation: a ``bool`` field must be a bool
    (``"no"`` would read as True), a ``float`` field a real number, a ``*dtype`` field a floating
    dtype. New cells get these checks for free."""
    for field in dataclasses.fields(cell):
        value = getattr(cell, field.name)
        annotation = str(field.type)
        if field.name.endswith("dtype"):
            allow_none = field.name != "param_dtype"
            _checks.check_float_dtype(cell.name, field.name, value, allow_none=allow_none)
        elif annotation == "bool":
            _checks.check_bool(cell.name, field.name, value)
        elif annotation == "float":
            _checks.check_real(cell.name, field.name, value)


def expand_to(v: Array, ndim: int) -> Array:
    """Reshapes a ``[features]`` vector to broadcast against ``[*batch, features]`` explicitly
    (the test suite runs with implicit rank promotion switched off)."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def accumulation_dtype(compute_dtype: DType) -> DType:
    """Matmuls accumulate and gates are computed in at least float32."""
    dtype = jnp.dtype(compute_dtype)
    return dtype if dtype.itemsize >= 4 else jnp.dtype(jnp.float32)


def dense(x: Array, w: Array, compute_dtype: DType) -> Array:
    """``x @ w`` over the last axis of ``x``, inputs cast to ``compute_dtype``, accumulated in at
    least float32."""
    return jnp.matmul(
        x.astype(compute_dtype),
        w.astype(compute_dtype),
        preferred_element_type=accumulation_dtype(compute_dtype),
    )


@dataclasses.dataclass(frozen=True)
class Cell:
    """Base class of all cells; see the module docstring for the protocol."""

    hidden_size: int
    dtype: DType | None = None
    param_dtype: DType = jnp.float32
    carry_dtype: DType | None = None

    name: ClassVar[str]

    def __post_init__(self) -> None:
        check_hidden_size(self.name, self.hidden_size)
        check_config_fields(self)

    # ---- what a cell writes ------------------------------------------------------------------
    def init(self, key: Array, input_size: int) -> PyTree:  # pragma: no cover - abstract
        raise NotImplementedError

    def initial_carry(self, batch_shape: tuple[int, ...] | int = ()) -> PyTree:
        """Zeros ``[*batch_shape, hidden]`` in the carry dtype (one-array carries)."""
        return self.zeros_state(batch_shape)

    def recur(
        self, params: PyTree, carry: PyTree, xp: Array, hh: Array
    ) -> tuple[PyTree, Array, NamedTuple | None]:  # pragma: no cover - abstract
        """One step given ``xp = project_inputs(params, x)`` and ``hh =
        recurrent_projection(params, carry)``: ``(new_carry, y [*batch, hidden], gates)``."""
        raise NotImplementedError

    # ---- the projections around the step (override for other names or splits) ---------------
    def project_inputs(self, params: PyTree, x: Array) -> Array:
        """``x: [..., input]`` -> ``[..., gates]``: ``x @ w_ih + b`` in the accumulation dtype."""
        xp = dense(x, params.w_ih, self.compute_dtype(params))
        b = getattr(params, "b", None)
        if b is not None:
            xp = xp + expand_to(b.astype(xp.dtype), xp.ndim)
        return xp

    def recurrent_projection(self, params: PyTree, carry: PyTree) -> Array:
        """``h @ w_hh``: ``[*batch, gates]`` in the accumulation dtype."""
        h = carry.h if hasattr(carry, "h") else carry
        return dense(h, params.w_hh, self.compute_dtype(params))

    def input_size(self, params: PyTree) -> int:
        """The input width the parameters expect (``w_ih: [input, gates]``)."""
        w_ih = params.w_ih
        if w_ih is None or len(w_ih.shape) != 2:
            raise TypeError("w_ih must be a matrix [input, gates]")
        return int(w_ih.shape[0])

    @property
    def output_size(self) -> int:
        """The width of ``y`` (and of a stack's next layer input): ``hidden_size`` unless the
        cell projects its output (LSTMP's ``proj_size``)."""
        return self.hidden_size

    # ---- derived -------------------------------------------------------------------------------
    def step(self, params: PyTree, carry: PyTree, x: Array) -> tuple[PyTree, Array]:
        """One time step.

        Args:
          params: this cell's parameters (see ``init``).
          carry: the state after the previous step, leaves ``[*batch, hidden]``.
          x: ``[*batch, input]``, any number (zero included) of batch dimensions.

        Returns:
          ``(carry, y)`` with the new carry and ``y: [*batch, hidden]``.
        """
        check_cell("step", self)
        check_params(self, params, "step")
        _checks.check_step_input(self.input_size(params), x, "step")
        check_carry(self, carry, x.shape[:-1], "step")
        carry, y, _ = self.recur_step(params, carry, self.project_inputs(params, x))
        return carry, y

    def recur_step(
        self, params: PyTree, carry: PyTree, xp: Array
    ) -> tuple[PyTree, Array, NamedTuple | None]:
        """``recur`` with its recurrent projection computed: the step after the input
        projection. Returns ``(carry, y, gates)`` with gates None when the cell has none."""
        out = self.recur(params, carry, xp, self.recurrent_projection(params, carry))
        return out if len(out) == 3 else (*out, None)

    def compute_dtype(self, params: PyTree) -> DType:
        return jnp.dtype(self.dtype) if self.dtype is not None else params.w_hh.dtype

    def resolved_carry_dtype(self) -> DType:
        return jnp.dtype(self.carry_dtype if self.carry_dtype is not None else self.param_dtype)

    def zeros_state(self, batch_shape: tuple[int, ...] | int) -> Array:
        shape = check_batch_shape(f"{self.name}.initial_carry", batch_shape)
        return jnp.zeros((*shape, self.hidden_size), self.resolved_carry_dtype())

    def output(self, h: Array, params: PyTree) -> Array:
        return h.astype(self.compute_dtype(params))

    def expected_param_shapes(self, input_size: int) -> PyTree:
        """The parameter pytree of ``init(key, input_size)`` as ShapeDtypeStructs (cached)."""
        return _expected_param_shapes(self, int(input_size))


@functools.lru_cache(maxsize=256)
def _expected_param_shapes(cell: Cell, input_size: int) -> PyTree:
    return jax.eval_shape(lambda k: cell.init(k, input_size), jax.random.key(0))


@functools.lru_cache(maxsize=1024)
def _expected_carry(cell: Cell, batch_shape: tuple[int, ...]) -> PyTree:
    return jax.eval_shape(lambda: cell.initial_carry(batch_shape))


def register_cell(cls: type) -> type:
    """Makes a cell class a frozen dataclass and a static (leafless) pytree, and registers it
    by its ``name`` (checkpoints and the Flax layers look cells up here)."""
    own_repr = "__repr__" in cls.__dict__
    cls = dataclasses.dataclass(frozen=True, repr=False)(cls)
    if not own_repr:
        # Set on the class itself: an intermediate plain dataclass would otherwise supply its
        # generated repr, which prints initialisers as function addresses.
        cls.__repr__ = config_repr
    jax.tree_util.register_static(cls)
    CELL_TYPES[cls.name] = cls
    return cls


def describe_value(value: Any) -> str:
    """A configuration value as a reader wants to see it: this package's initialisers by name
    (``initializers.orthogonal``), other functions by their qualified name without an address,
    dtypes by name, anything else by its repr."""
    from lstm_jax import initializers

    for name, obj in vars(initializers).items():
        if obj is value and not name.startswith("_") and callable(obj):
            return f"initializers.{name}"
    if isinstance(value, type | np.dtype):
        try:
            return jnp.dtype(value).name
        except TypeError:
            pass
    if isinstance(value, str):
        return repr(value)
    qualname = getattr(value, "__qualname__", None)
    if callable(value) and qualname:
        # jax.nn.initializers.normal(0.1) is a closure "normal.<locals>.init": say "normal(...)".
        return f"{qualname.split('.<locals>')[0]}(...)" if "<locals>" in qualname else qualname
    return repr(value)


def config_repr(cell: Any) -> str:
    """``LSTMCell(hidden_size=4, ..., kernel_init=initializers.glorot_uniform, ...)``: every
    dataclass field, so the repr of any registered cell (and of a stack of them) is readable."""
    fields = ", ".join(
        f"{f.name}={describe_value(getattr(cell, f.name))}"
        for f in dataclasses.fields(cell)
        if f.repr
    )
    return f"{type(cell).__name__}({fields})"


# ---- trace-time checks of cell arguments ------------------------------------------------------
def cell_repr(cell: Any) -> str:
    return f"{cell.name}(hidden_size={cell.hidden_size})"


def check_cell(fn: str, cell: Any, name: str = "cell") -> None:
    if not isinstance(cell, Cell):
        raise TypeError(
            f"{fn}: {name} must be an lstm_jax cell (lstm_jax.LSTMCell(...), GRUCell(...), ...), "
            f"got {type(cell).__name__}"
        )


def check_params(cell: Cell, params: PyTree, fn: str, name: str = "params") -> None:
    """``params`` must have the structure, shapes and floating dtypes of ``cell.init``. The
    expected shapes are cached per (cell, input size), so a check costs a tree comparison."""
    try:
        input_size = int(cell.input_size(params))
    except (AttributeError, TypeError, IndexError):
        raise TypeError(
            f"{fn}: {name} must be the parameters of {cell_repr(cell)} (as returned by its "
            f"init), got {_checks.describe(params)}"
        ) from None
    expected = cell.expected_param_shapes(input_size)
    if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(expected):
        raise TypeError(
            f"{fn}: {name} has the wrong structure for {cell_repr(cell)}: got "
            f"{_checks.describe(params)}, expected {_checks.describe(expected)}"
        )
    for got, want in zip(
        jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(expected), strict=True
    ):
        if tuple(got.shape) != tuple(want.shape) or not jnp.issubdtype(got.dtype, jnp.floating):
            raise ValueError(
                f"{fn}: {name} does not fit {cell_repr(cell)} with input size {input_size}: "
                f"got {_checks.describe(params)}, expected {_checks.describe(expected)}"
            )


def check_carry(
    cell: Cell, carry: PyTree, batch_shape: tuple[int, ...], fn: str, name: str = "carry"
) -> None:
    """``carry`` must have the structure, shapes and dtype of ``cell.initial_carry``."""
    expected = _expected_carry(cell, tuple(batch_shape))
    if jax.tree_util.tree_structure(carry) != jax.tree_util.tree_structure(expected):
        raise TypeError(
            f"{fn}: {name} has the wrong structure for {cell_repr(cell)}: got "
            f"{_checks.describe(carry)}, expected {_checks.describe(expected)} "
            f"(from cell.initial_carry({tuple(batch_shape)}))"
        )
    for got, want in zip(
        jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(expected), strict=True
    ):
        _checks.check_is_array(fn, name, got)
        if tuple(got.shape) != tuple(want.shape):
            raise ValueError(
                f"{fn}: {name} must have leaves of shape {tuple(want.shape)} "
                f"([*batch, hidden]), got {_checks.describe(carry)}"
            )
        if jnp.dtype(got.dtype) != jnp.dtype(want.dtype):
            raise TypeError(
                f"{fn}: {name} must have the cell's carry dtype {jnp.dtype(want.dtype).name} "
                f"(carry_dtype), got {_checks.describe(carry)}"
            )
