"""Independent NumPy (float64) references for the cells and the sequence code, plus shared test
helpers.

Everything numeric here is written from the equations, one step at a time, and never calls
lstm_jax: the references read a parameter NamedTuple only by its field names and arrays. Variable
lengths are handled the classic way, by slicing each row's valid prefix (and physically reversing
it for the backward direction), so the references share nothing with the masking approach of
``lstm_jax.unroll``.

Conventions (the library's documented layout, stored for ``x @ W``):

* LSTM ``w_ih [I, 4H]``, ``w_hh [H, 4H]``, ``b [4H]``, gate blocks ``i, f, g, o``;
* peephole LSTM adds ``p_i, p_f, p_o [H]`` (Gers & Schmidhuber 2000): ``c(t-1)`` enters the
  input and forget gates, ``c(t)`` the output gate;
* CIFG: blocks ``i, g, o`` and ``f = 1 - i``;
* GRU ``w_ih [I, 3H]``, ``w_hh [H, 3H]``, ``b [3H]`` (``b_r | b_z | b_in``), ``b_hn [H]``, gate
  blocks ``r, z, n``; ``reset_after`` (cuDNN) or the original form (Cho et al. 2014);
* Elman: ``w_ih [I, H]``, ``w_hh [H, H]``, ``b [H]``.

A reference carry is a tuple of float64 arrays: ``(h, c)`` for the LSTM family, ``(h,)`` for the
others.
"""

from __future__ import annotations

from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

import lstm_jax

# ---------------------------------------------------------------------------------------------
# Cells under test, by name. Every test file that covers "all cells" parametrises over this.
# ---------------------------------------------------------------------------------------------

CELL_FACTORIES: dict[str, Callable[..., lstm_jax.Cell]] = {
    "lstm": lambda h, **kw: lstm_jax.lstm(h, **kw),
    "peephole": lambda h, **kw: lstm_jax.peephole_lstm(h, **kw),
    "cifg": lambda h, **kw: lstm_jax.cifg_lstm(h, **kw),
    "gru_reset_after": lambda h, **kw: lstm_jax.gru(h, reset_after=True, **kw),
    "gru_reset_before": lambda h, **kw: lstm_jax.gru(h, reset_after=False, **kw),
    "simple_tanh": lambda h, **kw: lstm_jax.simple_rnn(h, activation="tanh", **kw),
    "simple_relu": lambda h, **kw: lstm_jax.simple_rnn(h, activation="relu", **kw),
}
CELL_NAMES = tuple(CELL_FACTORIES)

# The tiny shapes every test reuses (so compiled scans are shared between tests).
INPUT = 3
HIDDEN = 4
TIME = 5
BATCH = 3


def make_cell(name: str, hidden: int = HIDDEN, **config) -> lstm_jax.Cell:
    return CELL_FACTORIES[name](hidden, **config)


def random_params(cell, input_size: int, seed: int = 0, scale: float = 0.5):
    """``cell.init``'s structure with every leaf (biases and peepholes included) replaced by
    N(0, scale^2) draws, so that no term of the equations is silently zero."""
    params = cell.init(jax.random.key(seed), input_size)
    rng = np.random.default_rng(seed + 1000)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    leaves = [jnp.asarray(scale * rng.standard_normal(leaf.shape), leaf.dtype) for leaf in leaves]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def random_params_like(params, seed: int = 0, scale: float = 0.5):
    """A pytree of N(0, scale^2) draws with the structure and shapes of ``params``."""
    rng = np.random.default_rng(seed + 3000)
    return jax.tree_util.tree_map(
        lambda leaf: jnp.asarray(scale * rng.standard_normal(leaf.shape), leaf.dtype), params
    )


def random_array(shape, seed: int = 0, dtype=jnp.float32, scale: float = 1.0):
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), dtype)


def random_carry(cell, batch_shape, seed: int = 0, dtype=None):
    """A non-zero carry with the structure of ``cell.initial_carry(batch_shape)``."""
    zeros = cell.initial_carry(batch_shape)
    leaves, treedef = jax.tree_util.tree_flatten(zeros)
    rng = np.random.default_rng(seed + 2000)
    leaves = [jnp.asarray(0.5 * rng.standard_normal(z.shape), dtype or z.dtype) for z in leaves]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def with_garbage(xs, seq_lengths, value, *, time_major: bool = False):
    """``xs`` with every element at or past each row's length replaced by ``value``."""
    xs = np.array(xs)
    t_axis = 0 if time_major else -2
    steps = np.arange(xs.shape[t_axis])
    lengths = np.asarray(seq_lengths)
    if time_major:
        pad = steps.reshape((-1,) + (1,) * lengths.ndim) >= lengths[None]
    else:
        pad = steps >= lengths[..., None]
    xs[pad] = value
    return jnp.asarray(xs)


# ---------------------------------------------------------------------------------------------
# Conversions between lstm_jax values and reference values.
# ---------------------------------------------------------------------------------------------


def kind_of(cell) -> str:
    """The reference equations a cell must follow, from its class and configuration."""
    if isinstance(cell, lstm_jax.PeepholeLSTMCell):
        return "peephole"
    if isinstance(cell, lstm_jax.CIFGLSTMCell):
        return "cifg"
    if isinstance(cell, lstm_jax.LSTMCell):
        return "lstm"
    if isinstance(cell, lstm_jax.GRUCell):
        return "gru_reset_after" if cell.reset_after else "gru_reset_before"
    if isinstance(cell, lstm_jax.SimpleRNNCell):
        return f"simple_{cell.activation}"
    raise TypeError(f"no reference for {cell!r}")


def np_params(params) -> dict:
    """A parameter NamedTuple as a dict of float64 arrays (None kept)."""
    return {
        k: None if v is None else np.asarray(v, np.float64) for k, v in params._asdict().items()
    }


def np_carry(carry) -> tuple:
    """An lstm_jax carry as a reference carry: ``(h, c)`` or ``(h,)``."""
    if hasattr(carry, "c"):
        return (np.asarray(carry.h, np.float64), np.asarray(carry.c, np.float64))
    return (np.asarray(carry, np.float64),)


def has_cell_state(kind: str) -> bool:
    return kind in ("lstm", "peephole", "cifg")


def zero_carry(kind: str, batch_shape, hidden: int) -> tuple:
    z = np.zeros((*batch_shape, hidden))
    return (z, z.copy()) if has_cell_state(kind) else (z,)


# ---------------------------------------------------------------------------------------------
# One step of each cell.
# ---------------------------------------------------------------------------------------------


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _blocks(a, n):
    hidden = a.shape[-1] // n
    return [a[..., k * hidden : (k + 1) * hidden] for k in range(n)]


def _pre(p, h, x):
    a = x @ p["w_ih"] + h @ p["w_hh"]
    return a if p["b"] is None else a + p["b"]


def lstm_step(p, carry, x):
    h, c = carry
    a_i, a_f, a_g, a_o = _blocks(_pre(p, h, x), 4)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    return (h_new, c_new), h_new, {"i": i, "f": f, "g": g, "o": o}


def peephole_step(p, carry, x):
    h, c = carry
    a_i, a_f, a_g, a_o = _blocks(_pre(p, h, x), 4)
    i = sigmoid(a_i + p["p_i"] * c)
    f = sigmoid(a_f + p["p_f"] * c)
    g = np.tanh(a_g)
    c_new = f * c + i * g
    o = sigmoid(a_o + p["p_o"] * c_new)
    h_new = o * np.tanh(c_new)
    return (h_new, c_new), h_new, {"i": i, "f": f, "g": g, "o": o}


def cifg_step(p, carry, x):
    h, c = carry
    a_i, a_g, a_o = _blocks(_pre(p, h, x), 3)
    i, g, o = sigmoid(a_i), np.tanh(a_g), sigmoid(a_o)
    f = 1.0 - i
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    return (h_new, c_new), h_new, {"i": i, "f": f, "g": g, "o": o}


def _gru_input_parts(p, x):
    xw = x @ p["w_ih"]
    if p["b"] is not None:
        xw = xw + p["b"]
    return _blocks(xw, 3)


def gru_reset_after_step(p, carry, x):
    """cuDNN / PyTorch form: n = tanh(x W_in + b_in + r * (h W_hn + b_hn))."""
    (h,) = carry
    x_r, x_z, x_n = _gru_input_parts(p, x)
    w_hr, w_hz, w_hn = _blocks(p["w_hh"], 3)
    r = sigmoid(x_r + h @ w_hr)
    z = sigmoid(x_z + h @ w_hz)
    h_n = h @ w_hn
    if p["b_hn"] is not None:
        h_n = h_n + p["b_hn"]
    n = np.tanh(x_n + r * h_n)
    h_new = (1.0 - z) * n + z * h
    return (h_new,), h_new, {"r": r, "z": z, "n": n}


def gru_reset_before_step(p, carry, x):
    """Cho et al. 2014: n = tanh(x W_in + b_in + (r * h) W_hn)."""
    (h,) = carry
    x_r, x_z, x_n = _gru_input_parts(p, x)
    w_hr, w_hz, w_hn = _blocks(p["w_hh"], 3)
    r = sigmoid(x_r + h @ w_hr)
    z = sigmoid(x_z + h @ w_hz)
    n = np.tanh(x_n + (r * h) @ w_hn)
    h_new = (1.0 - z) * n + z * h
    return (h_new,), h_new, {"r": r, "z": z, "n": n}


def _simple_step(activation):
    def step(p, carry, x):
        (h,) = carry
        a = _pre(p, h, x)
        h_new = activation(a)
        return (h_new,), h_new, {"a": a}

    return step


STEPS = {
    "lstm": lstm_step,
    "peephole": peephole_step,
    "cifg": cifg_step,
    "gru_reset_after": gru_reset_after_step,
    "gru_reset_before": gru_reset_before_step,
    "simple_tanh": _simple_step(np.tanh),
    "simple_relu": _simple_step(lambda a: np.maximum(a, 0.0)),
}


def ref_step(kind: str, params, carry, x):
    """One step: ``(carry, y, gates)`` for ``x: [*batch, input]`` (reference carry in and out)."""
    p = params if isinstance(params, dict) else np_params(params)
    carry = tuple(np.asarray(c, np.float64) for c in carry)
    return STEPS[kind](p, carry, np.asarray(x, np.float64))


# ---------------------------------------------------------------------------------------------
# Sequences.
# ---------------------------------------------------------------------------------------------


def _clip_lengths(seq_lengths, batch_shape, time):
    if seq_lengths is None:
        return np.full(batch_shape, time, dtype=np.int64)
    return np.clip(np.asarray(seq_lengths, np.int64), 0, time)  # the documented semantics


def ref_unroll(
    kind: str,
    params,
    xs,
    seq_lengths=None,
    initial_carry=None,
    *,
    reverse: bool = False,
    time_major: bool = False,
):
    """Runs the reference step over ``xs: [*batch, time, input]`` row by row.

    Each row runs over its own valid prefix only; with ``reverse`` that prefix is physically
    reversed, run forward, and the outputs flipped back to the input positions.

    Returns:
      ``(carry, ys [*batch, time, hidden], gates)`` (``ys`` and gates time-major if
      ``time_major``); ``ys`` and gates are zero past each length.
    """
    p = params if isinstance(params, dict) else np_params(params)
    xs = np.asarray(xs, np.float64)
    if time_major:
        xs = np.moveaxis(xs, 0, -2)
    *batch, time, input_size = xs.shape
    batch = tuple(batch)
    hidden = p["w_hh"].shape[0]
    lengths = _clip_lengths(seq_lengths, batch, time).reshape(-1)
    rows = xs.reshape(-1, time, input_size)
    if initial_carry is None:
        initial_carry = zero_carry(kind, batch, hidden)
    init = [np.asarray(c, np.float64).reshape(-1, hidden) for c in initial_carry]

    ys = np.zeros((rows.shape[0], time, hidden))
    final = [c.copy() for c in init]
    gates: dict[str, np.ndarray] = {}
    for b in range(rows.shape[0]):
        length = int(lengths[b])
        seq = rows[b, :length]
        if reverse:
            seq = seq[::-1]
        carry = tuple(c[b] for c in init)
        outs, row_gates = [], []
        for t in range(length):
            carry, y, g = STEPS[kind](p, carry, seq[t])
            outs.append(y)
            row_gates.append(g)
        if reverse:
            outs, row_gates = outs[::-1], row_gates[::-1]
        for t in range(length):
            ys[b, t] = outs[t]
            for name, value in row_gates[t].items():
                gates.setdefault(name, np.zeros((rows.shape[0], time, hidden)))[b, t] = value
        for k, c in enumerate(carry):
            final[k][b] = c

    def shape_back(a):
        a = a.reshape((*batch, time, hidden))
        return np.moveaxis(a, -2, 0) if time_major else a

    carry = tuple(c.reshape((*batch, hidden)) for c in final)
    return carry, shape_back(ys), {k: shape_back(v) for k, v in gates.items()}


REF_MERGES = {
    "concat": lambda f, b: np.concatenate([f, b], axis=-1),
    "sum": lambda f, b: f + b,
    "mean": lambda f, b: (f + b) / 2,
    "mul": lambda f, b: f * b,
}


def valid_mask(batch_shape, time, seq_lengths, *, time_major: bool = False):
    """Booleans ``[*batch, time]`` (``[time, *batch]`` if time_major), True on valid steps."""
    lengths = _clip_lengths(seq_lengths, tuple(batch_shape), time)
    mask = np.arange(time) < lengths[..., None]
    return np.moveaxis(mask, -1, 0) if time_major else mask


def ref_bidirectional(
    kinds,
    params,
    xs,
    seq_lengths=None,
    initial_carry=None,
    *,
    merge="concat",
    time_major: bool = False,
):
    """``kinds = (forward_kind, backward_kind)``, ``params = (forward, backward)``.

    Returns ``((carry_f, carry_b), ys)``; ys are zero past each length whatever ``merge`` is.
    """
    init_f, init_b = (None, None) if initial_carry is None else initial_carry
    carry_f, ys_f, _ = ref_unroll(
        kinds[0], params[0], xs, seq_lengths, init_f, time_major=time_major
    )
    carry_b, ys_b, _ = ref_unroll(
        kinds[1], params[1], xs, seq_lengths, init_b, reverse=True, time_major=time_major
    )
    merge_fn = REF_MERGES[merge] if isinstance(merge, str) else merge
    ys = np.asarray(merge_fn(ys_f, ys_b), np.float64)
    xs = np.asarray(xs)
    t_axis = 0 if time_major else -2
    batch = xs.shape[1:-1] if time_major else xs.shape[:-2]
    mask = valid_mask(batch, xs.shape[t_axis], seq_lengths, time_major=time_major)
    ys = np.where(mask[..., None], ys, 0.0)
    return (carry_f, carry_b), ys


def ref_stack(
    kinds,
    params,
    xs,
    seq_lengths=None,
    initial_carry=None,
    *,
    bidirectional: bool = False,
    residual: bool = False,
    merge: str = "concat",
):
    """Chains reference layers (no dropout): ``kinds`` and ``params`` one entry per layer (a
    ``(forward, backward)`` pair of params if bidirectional). Residuals add a layer's input to
    its output where the widths agree; outputs past each length stay zero."""
    xs = np.asarray(xs, np.float64)
    mask = valid_mask(xs.shape[:-2], xs.shape[-2], seq_lengths)[..., None]
    h = xs
    carries = []
    for layer, (kind, p) in enumerate(zip(kinds, params, strict=True)):
        c0 = None if initial_carry is None else initial_carry[layer]
        if bidirectional:
            carry, out = ref_bidirectional((kind, kind), p, h, seq_lengths, c0, merge=merge)
        else:
            carry, out, _ = ref_unroll(kind, p, h, seq_lengths, c0)
        if residual and out.shape[-1] == h.shape[-1]:
            out = np.where(mask, out + h, 0.0)
        carries.append(carry)
        h = out
    return tuple(carries), h


# ---------------------------------------------------------------------------------------------
# Comparisons.
# ---------------------------------------------------------------------------------------------


def assert_close(actual, expected, atol=2e-5, rtol=2e-5, err_msg=""):
    np.testing.assert_allclose(
        np.asarray(actual, np.float64),
        np.asarray(expected, np.float64),
        atol=atol,
        rtol=rtol,
        err_msg=err_msg,
    )


def assert_carry_close(carry, ref_carry, atol=2e-5, rtol=2e-5):
    got = np_carry(carry)
    assert len(got) == len(ref_carry)
    for name, a, b in zip(("h", "c"), got, ref_carry, strict=False):
        assert_close(a, b, atol=atol, rtol=rtol, err_msg=f"carry.{name}")


def assert_gates_close(gates, ref_gates, atol=2e-5, rtol=2e-5):
    got = gates._asdict()
    assert set(got) == set(ref_gates), (set(got), set(ref_gates))
    for name in got:
        assert_close(got[name], ref_gates[name], atol=atol, rtol=rtol, err_msg=f"gate {name}")


def assert_trees_equal(a, b):
    """Bitwise equality of two pytrees (same structure)."""
    chex.assert_trees_all_equal(a, b)


def assert_trees_close(a, b, atol=1e-6, rtol=1e-6):
    """Same structure, every leaf within ``atol + rtol * |b|``."""
    chex.assert_trees_all_close(a, b, atol=atol, rtol=rtol)


def assert_all_finite(tree):
    for leaf in jax.tree_util.tree_leaves(tree):
        assert np.all(np.isfinite(np.asarray(leaf))), leaf


# ---------------------------------------------------------------------------------------------
# Checks shared by the per-cell test files (tests/cells/test_*.py call them with their cells).
# ---------------------------------------------------------------------------------------------

BATCH_SHAPES = ((), (BATCH,), (2, BATCH))  # zero, one and two batch dimensions
LENGTHS = np.array([TIME, 2, 0], np.int32)  # full, partial and empty rows

# bf16 tolerance: bfloat16 keeps 8 significant bits (relative rounding ~4e-3 per operation);
# over TIME=5 steps with weights ~N(0, 0.25) the outputs stay within 2e-2 absolute (plus 2e-2
# relative for the unbounded relu RNN) of float32. Carries are float32 and get the same bound.
BF16_ATOL = 2e-2
BF16_RTOL = 2e-2


def check_step_matches_reference(name: str, batch_shape, **config) -> None:
    cell = make_cell(name, **config)
    params = random_params(cell, INPUT, seed=1)
    carry = random_carry(cell, batch_shape, seed=2)
    x = random_array((*batch_shape, INPUT), seed=3)
    new_carry, y = cell.step(params, carry, x)
    ref_carry, ref_y, _ = ref_step(kind_of(cell), params, np_carry(carry), x)
    assert y.shape == (*batch_shape, HIDDEN)
    assert_close(y, ref_y)
    assert_carry_close(new_carry, ref_carry)
    assert jax.tree_util.tree_structure(new_carry) == jax.tree_util.tree_structure(carry)


def check_unroll_matches_reference(name: str, *, reverse: bool = False, **config) -> None:
    cell = make_cell(name, **config)
    params = random_params(cell, INPUT, seed=4)
    xs = random_array((BATCH, TIME, INPUT), seed=5)
    c0 = random_carry(cell, (BATCH,), seed=6)
    carry, ys = lstm_jax.unroll(
        cell, params, xs, seq_lengths=jnp.asarray(LENGTHS), initial_carry=c0, reverse=reverse
    )
    ref_carry, ref_ys, _ = ref_unroll(
        kind_of(cell), params, xs, LENGTHS, np_carry(c0), reverse=reverse
    )
    assert ys.shape == (BATCH, TIME, HIDDEN)
    assert_close(ys, ref_ys)
    assert_carry_close(carry, ref_carry)


def check_step_grads(name: str, modes=("rev", "fwd")) -> None:
    """Finite differences in float64 (call under the ``x64`` fixture)."""
    from jax.test_util import check_grads

    cell = make_cell(name, param_dtype=jnp.float64)
    params = random_params(cell, INPUT, seed=7)
    carry = random_carry(cell, (2,), seed=8)
    x = random_array((2, INPUT), seed=9, dtype=jnp.float64)
    check_grads(cell.step, (params, carry, x), order=1, modes=modes)


def check_unroll_grads(name: str, *, reverse: bool = False, modes=("rev",), **options) -> None:
    """Gradients of unroll with seq_lengths wrt params, xs and the initial carry, in float64.

    ``options`` go to ``unroll`` (``impl``: its default, or another implementation)."""
    from jax.test_util import check_grads

    cell = make_cell(name, param_dtype=jnp.float64)
    params = random_params(cell, INPUT, seed=10)
    xs = random_array((BATCH, TIME, INPUT), seed=11, dtype=jnp.float64)
    c0 = random_carry(cell, (BATCH,), seed=12)
    lengths = jnp.asarray(LENGTHS)

    def run(p, xs, c0):
        return lstm_jax.unroll(
            cell, p, xs, seq_lengths=lengths, initial_carry=c0, reverse=reverse, **options
        )

    check_grads(run, (params, xs, c0), order=1, modes=modes)


def check_bf16_close_to_f32(name: str) -> None:
    """Compute in bfloat16 with float32 params and carry: outputs within the bf16 tolerance of a
    float32 run, the carry stays float32 and the outputs are bfloat16."""
    cell32 = make_cell(name)
    cell16 = make_cell(name, dtype=jnp.bfloat16)
    params = random_params(cell32, INPUT, seed=13)
    xs = random_array((BATCH, TIME, INPUT), seed=14)
    lengths = jnp.asarray(LENGTHS)

    assert all(
        leaf.dtype == jnp.float32
        for leaf in jax.tree_util.tree_leaves(cell16.initial_carry((BATCH,)))
    )
    carry16, y16 = cell16.step(params, cell16.initial_carry((BATCH,)), xs[:, 0])
    carry32, y32 = cell32.step(params, cell32.initial_carry((BATCH,)), xs[:, 0])
    assert y16.dtype == jnp.bfloat16
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(carry16))
    assert_close(y16, y32, atol=BF16_ATOL, rtol=BF16_RTOL)

    carry16, ys16 = lstm_jax.unroll(cell16, params, xs, seq_lengths=lengths)
    carry32, ys32 = lstm_jax.unroll(cell32, params, xs, seq_lengths=lengths)
    assert ys16.dtype == jnp.bfloat16
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(carry16))
    assert_close(ys16, ys32, atol=BF16_ATOL, rtol=BF16_RTOL)
    assert_trees_close(carry16, carry32, atol=BF16_ATOL, rtol=BF16_RTOL)
    # Padding stays exactly zero in bf16 too.
    assert np.all(np.asarray(ys16, np.float32)[1, 2:] == 0)
