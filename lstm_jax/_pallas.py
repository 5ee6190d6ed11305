"""``impl="pallas"``: the whole recurrence of one layer in one Pallas kernel launch.

The input projection ``xp = project_inputs(params, xs)`` is one large matmul over all
``time * batch`` rows before the kernel. The kernel's grid runs over tiles of batch rows; each
program loops over time inside the kernel, keeping its rows' carry in registers: per step it
reads each gate block's ``xp`` and multiplies ``h`` by that block of ``w_hh``, applies the
cell's gate arithmetic (fused, in float32), keeps the carry where the step is masked and writes
``y``. With ``reverse=True`` the loop runs from the last index down, and a row's padded steps
(masked) come first and leave its carry untouched, which is the per-row reversal of the scan.

Gate blocks are read from the refs with ``pl.ds`` (``w_ref[:, pl.ds(k * H, H)]``), never by
slicing a loaded value: the Triton lowering rejects value slicing (``g[:, :H]``). So the
kernel does not call ``cell.recur`` (which splits a value); each supported cell has its gate
arithmetic written here once over gate blocks (``_STEPS``), and the tests check it against the
cell's own ``recur`` through the scan. Supported: ``LSTMCell``, ``CIFGLSTMCell``,
``PeepholeLSTMCell``, ``GRUCell(reset_after=True)``, ``SimpleRNNCell``; any other cell is a
``TypeError`` naming it (use ``"split"`` or ``"scan"``).

Derivative (a ``custom_vjp``): for ``LSTMCell`` with a float32 carry, the forward kernel also
saves the carry before every step, and a backward kernel runs the recurrent part in one launch
the other way round (recompute the step's gates from the saved carry, the elementwise VJP,
``dh = sum_k da_k @ w_hh[:, k]^T``), writing ``da``, the gradient of ``xp + hh``; the weight
gradients are then large matmuls over all ``time * batch`` rows, as in the split VJP
(``dW_hh = H^T dA``, the input projection's VJP of ``dA``). Other cells differentiate through
the split backward of ``lstm_jax._split`` run in plain JAX, which recomputes the forward scan;
there the kernel's outputs are unused under ``jax.grad`` and XLA drops it.

On CPU (or with ``interpret=True``) the kernel runs in Pallas' interpret mode, which is what
makes it testable here; on GPU it lowers through Triton, on TPU through Mosaic (the branch is
picked per platform at lowering, ``lax.platform_dependent``). Tiles: compiled, ``block_b`` rows
per program (16 by default, the least ``tl.dot`` accepts; the batch is padded to a multiple
of it); in interpret mode one tile holds the whole batch unless ``block_b`` says otherwise. On
GPU the hidden size must be a power of two (Triton's block shapes), else a ValueError. Each
program reads ``w_hh`` whole at every step, so at large hidden sizes that read, not the
launch, bounds the step; no GPU measurement exists yet (``impl="auto"`` never picks it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from lstm_jax._split import split_scan
from lstm_jax.cells.base import Cell
from lstm_jax.cells.gru import GRUCell
from lstm_jax.cells.lstm import CIFGLSTMCell, LSTMCarry, LSTMCell, PeepholeLSTMCell
from lstm_jax.cells.simple import SimpleRNNCell
from lstm_jax.impl import register_impl
from lstm_jax.typing import Array, PyTree

_F32 = jnp.float32


class _Step(NamedTuple):
    """A cell's gate arithmetic over gate blocks.

    ``vectors(cell, params) -> tuple of [hidden]`` arrays the step reads (peepholes, ``b_hn``);
    ``step(cell, xp, hh, carry, vectors) -> (new_carry, y)`` over lists of ``[rows, hidden]``
    float32 blocks ``xp[k]``, ``hh[k]`` and the carry as a tuple of float32 ``[rows, hidden]``
    (``(h, c)`` or ``(h,)``).
    """

    num_gates: Callable[[Cell], int]
    vectors: Callable[[Cell, PyTree], tuple]
    step: Callable


def _lstm_step(cell, xp, hh, carry, vectors):
    a_i, a_f, a_g, a_o = (x + h for x, h in zip(xp, hh, strict=True))
    i, f, g, o = jax.nn.sigmoid(a_i), jax.nn.sigmoid(a_f), jnp.tanh(a_g), jax.nn.sigmoid(a_o)
    c = f * carry[1] + i * g
    h = o * jnp.tanh(c)
    return (h, c), h


def _cifg_step(cell, xp, hh, carry, vectors):
    a_i, a_g, a_o = (x + h for x, h in zip(xp, hh, strict=True))
    i, g, o = jax.nn.sigmoid(a_i), jnp.tanh(a_g), jax.nn.sigmoid(a_o)
    c = (1.0 - i) * carry[1] + i * g
    h = o * jnp.tanh(c)
    return (h, c), h


def _peephole_step(cell, xp, hh, carry, vectors):
    p_i, p_f, p_o = vectors
    a_i, a_f, a_g, a_o = (x + h for x, h in zip(xp, hh, strict=True))
    c_prev = carry[1]
    i = jax.nn.sigmoid(a_i + p_i * c_prev)
    f = jax.nn.sigmoid(a_f + p_f * c_prev)
    c = f * c_prev + i * jnp.tanh(a_g)
    o = jax.nn.sigmoid(a_o + p_o * c)
    h = o * jnp.tanh(c)
    return (h, c), h


def _gru_step(cell, xp, hh, carry, vectors):
    (b_hn,) = vectors
    x_r, x_z, x_n = xp
    h_r, h_z, h_n = hh
    h_prev = carry[0]
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * (h_n + b_hn))
    h = (1.0 - z) * n + z * h_prev
    return (h,), h


def _simple_step(cell, xp, hh, carry, vectors):
    a = xp[0] + hh[0]
    h = jnp.tanh(a) if cell.activation == "tanh" else jnp.maximum(a, 0.0)
    return (h,), h


def _no_vectors(cell, params):
    return ()


def _gru_vectors(cell, params):
    if params.b_hn is None:
        return (jnp.zeros((cell.hidden_size,), _F32),)
    return (params.b_hn,)


_STEPS: dict[type, _Step] = {
    LSTMCell: _Step(lambda c: 4, _no_vectors, _lstm_step),
    CIFGLSTMCell: _Step(lambda c: 3, _no_vectors, _cifg_step),
    PeepholeLSTMCell: _Step(lambda c: 4, lambda c, p: (p.p_i, p.p_f, p.p_o), _peephole_step),
    GRUCell: _Step(lambda c: 3, _gru_vectors, _gru_step),
    SimpleRNNCell: _Step(lambda c: 1, _no_vectors, _simple_step),
}


def check_supported(cell: Cell) -> _Step:
    """The gate arithmetic of ``cell``, or a TypeError naming the cell."""
    spec = _STEPS.get(type(cell))
    if spec is None or (isinstance(cell, GRUCell) and not cell.reset_after):
        supported = ", ".join(sorted(t.__name__ for t in _STEPS))
        raise TypeError(
            f"impl='pallas' has no kernel for {cell!r}; supported cells: {supported} "
            "(GRUCell with reset_after=True only); use impl='split' or 'scan'"
        )
    return spec


def _kernel(*refs, spec, cell, num_steps, hidden, num_gates, num_vectors, has_c, has_mask,
            reverse, compute_dtype, carry_dtype, save):  # fmt: skip
    """One program: the whole time loop for its tile of rows.

    refs: ``xp [time, rows, gates]``, ``mask [time, rows, 1]`` (if any), ``w_hh [hidden,
    gates]``, each vector ``[1, hidden]``, ``h0 [rows, hidden]``, ``c0`` (if any); then the
    outputs ``ys [time, rows, hidden]``, ``h_T``, ``c_T`` (if any), and with ``save`` each
    carry leaf before every step, ``[time, rows, hidden]``.
    """
    it = iter(refs)
    xp_ref = next(it)
    mask_ref = next(it) if has_mask else None
    w_ref = next(it)
    vec_refs = [next(it) for _ in range(num_vectors)]
    h0_ref = next(it)
    c0_ref = next(it) if has_c else None
    ys_ref = next(it)
    h_out = next(it)
    c_out = next(it) if has_c else None
    saved_refs = [next(it) for _ in range(1 + has_c)] if save else []

    vectors = tuple(v[...].astype(_F32) for v in vec_refs)
    blocks = [pl.ds(k * hidden, hidden) for k in range(num_gates)]

    def body(s, carry):
        t = num_steps - 1 - s if reverse else s
        for ref, v in zip(saved_refs, carry, strict=False):
            ref[t] = v
        h_in = carry[0].astype(compute_dtype)
        xp = [xp_ref[t, :, blk].astype(_F32) for blk in blocks]
        hh = [
            jnp.dot(h_in, w_ref[:, blk].astype(compute_dtype), preferred_element_type=_F32)
            for blk in blocks
        ]
        old = tuple(v.astype(_F32) for v in carry)
        new, y = spec.step(cell, xp, hh, old, vectors)
        # The carry is rounded to its dtype every step, as the scan does.
        new = tuple(v.astype(carry_dtype) for v in new)
        y = y.astype(compute_dtype)
        if has_mask:
            keep = mask_ref[t] > 0  # [rows, 1]
            new = tuple(jnp.where(keep, n, o) for n, o in zip(new, carry, strict=True))
            y = jnp.where(keep, y, jnp.zeros_like(y))
        ys_ref[t] = y.astype(ys_ref.dtype)
        return new

    init = (h0_ref[...],) + ((c0_ref[...],) if has_c else ())
    final = jax.lax.fori_loop(0, num_steps, body, init)
    h_out[...] = final[0]
    if has_c:
        c_out[...] = final[1]


def pallas_forward(cell: Cell, params: PyTree, xs: Array, carry: PyTree, mask: Array | None, *,
                   reverse: bool, interpret: bool, block_b: int | None,
                   compiler_params: Any = None, save: bool = False) -> tuple:  # fmt: skip
    """The forward pass through the kernel, no derivative.

    With ``save`` it also returns each carry leaf before every step (``[time, *batch,
    hidden]``), what the backward kernel reads.

    Args:
      xs: ``[time, *batch, input]``, zero where ``mask`` is False.
      carry: leaves ``[*batch, hidden]``.
      mask: ``[time, *batch]`` booleans or None.

    Returns:
      ``(final_carry, ys [time, *batch, hidden])``.
    """
    spec = check_supported(cell)
    num_steps, batch_shape = xs.shape[0], xs.shape[1:-1]
    hidden = cell.hidden_size
    num_gates = spec.num_gates(cell)
    compute_dtype = jnp.dtype(cell.compute_dtype(params))
    carry_dtype = cell.resolved_carry_dtype()
    rows = 1
    for d in batch_shape:
        rows *= d
    has_c = isinstance(carry, LSTMCarry)
    leaves = (carry.h, carry.c) if has_c else (carry,)
    leaves = [v.reshape(rows, hidden) for v in leaves]

    xp = cell.project_inputs(params, xs).reshape(num_steps, rows, num_gates * hidden)
    m = None
    if mask is not None:
        m = mask.reshape(num_steps, rows, 1).astype(_F32)

    if compiler_params is not None and hidden & (hidden - 1):
        raise ValueError(
            f"impl='pallas' on GPU: the Triton lowering needs a power-of-two hidden_size, got "
            f"{hidden} for {cell!r}; use impl='split' or 'scan'"
        )
    tile = block_b or (rows if interpret else 16)
    padded = -(-max(rows, 1) // tile) * tile
    if padded != rows:  # padded rows are masked out and dropped
        pad = padded - rows
        xp = jnp.pad(xp, ((0, 0), (0, pad), (0, 0)))
        m = jnp.ones((num_steps, rows, 1), _F32) if m is None else m
        m = jnp.pad(m, ((0, 0), (0, pad), (0, 0)))
        leaves = [jnp.pad(v, ((0, pad), (0, 0))) for v in leaves]
    vectors = [v.astype(_F32).reshape(1, hidden) for v in spec.vectors(cell, params)]
    w_hh = params.w_hh.astype(compute_dtype)

    gates = num_gates * hidden
    full = lambda shape: pl.BlockSpec(shape, lambda b: (0,) * len(shape))
    in_specs = [pl.BlockSpec((num_steps, tile, gates), lambda b: (0, b, 0))]
    args = [xp]
    if m is not None:
        in_specs.append(pl.BlockSpec((num_steps, tile, 1), lambda b: (0, b, 0)))
        args.append(m)
    in_specs.append(full((hidden, gates)))
    args.append(w_hh)
    in_specs += [full((1, hidden)) for _ in vectors]
    args += vectors
    row_spec = pl.BlockSpec((tile, hidden), lambda b: (b, 0))
    in_specs += [row_spec for _ in leaves]
    args += leaves
    out_shape = [jax.ShapeDtypeStruct((num_steps, padded, hidden), compute_dtype)]
    out_shape += [jax.ShapeDtypeStruct((padded, hidden), carry_dtype) for _ in leaves]
    out_specs = [pl.BlockSpec((num_steps, tile, hidden), lambda b: (0, b, 0))]
    out_specs += [row_spec for _ in leaves]
    if save:
        out_shape += [
            jax.ShapeDtypeStruct((num_steps, padded, hidden), carry_dtype) for _ in leaves
        ]
        out_specs += [pl.BlockSpec((num_steps, tile, hidden), lambda b: (0, b, 0)) for _ in leaves]

    kernel = functools.partial(
        _kernel,
        spec=spec,
        cell=cell,
        num_steps=num_steps,
        hidden=hidden,
        num_gates=num_gates,
        num_vectors=len(vectors),
        has_c=has_c,
        has_mask=m is not None,
        reverse=reverse,
        compute_dtype=compute_dtype,
        carry_dtype=carry_dtype,
        save=save,
    )
    ys, *final = pl.pallas_call(
        kernel,
        out_shape=out_shape,
        grid=(padded // tile,),
        in_specs=in_specs,
        out_specs=out_specs,
        interpret=interpret,
        compiler_params=compiler_params,
        name=f"lstm_jax_{cell.name}_recurrence",
    )(*args)
    ys = ys[:, :rows].reshape(num_steps, *batch_shape, hidden)
    saved = [v[:, :rows].reshape(num_steps, *batch_shape, hidden) for v in final[len(leaves) :]]
    final = [v[:rows].reshape(*batch_shape, hidden) for v in final[: len(leaves)]]
    final_carry = LSTMCarry(*final) if has_c else final[0]
    if save:
        return final_carry, ys, tuple(saved)
    return final_carry, ys


def _lstm_backward_kernel(xp_ref, mask_ref, w_ref, hb_ref, cb_ref, dys_ref, dh_ref, dc_ref,
                          da_ref, dh0_ref, dc0_ref, *, num_steps, hidden, reverse,
                          compute_dtype):  # fmt: skip
    """The LSTM's recurrent backward for one tile of rows, in the opposite order of the
    forward loop: recompute the step's gates from the saved carry, its elementwise VJP, and
    ``dh_prev = sum_k da_k @ w_hh[:, k]^T``. Writes ``da [time, rows, 4H]`` (the gradient of
    the pre-activation ``xp + hh``, zero at masked steps) and the initial carry's gradient."""
    blocks = [pl.ds(k * hidden, hidden) for k in range(4)]
    dims = (((1,), (1,)), ((), ()))  # da_k [rows, H] x w_k [H, H] over w's output axis

    def body(s, carry):
        t = s if reverse else num_steps - 1 - s
        dh_c, dc_c = carry
        h_prev, c_prev = hb_ref[t].astype(_F32), cb_ref[t].astype(_F32)
        h_in = h_prev.astype(compute_dtype)
        a = [
            xp_ref[t, :, blk].astype(_F32)
            + jnp.dot(h_in, w_ref[:, blk].astype(compute_dtype), preferred_element_type=_F32)
            for blk in blocks
        ]
        i, f, g, o = (
            jax.nn.sigmoid(a[0]),
            jax.nn.sigmoid(a[1]),
            jnp.tanh(a[2]),
            jax.nn.sigmoid(a[3]),
        )
        c = f * c_prev + i * g
        tc = jnp.tanh(c)
        m = mask_ref[t]  # [rows, 1], 1.0 where the step is valid
        dh = m * (dh_c + dys_ref[t].astype(_F32))
        d_o = dh * tc
        dc = m * dc_c + dh * o * (1.0 - tc * tc)
        da = [
            dc * g * i * (1.0 - i),
            dc * c_prev * f * (1.0 - f),
            dc * i * (1.0 - g * g),
            d_o * o * (1.0 - o),
        ]
        dh_prev = (1.0 - m) * dh_c
        for blk, d in zip(blocks, da, strict=True):
            da_ref[t, :, blk] = d
            w_k = w_ref[:, blk].astype(compute_dtype)
            dh_prev = dh_prev + jax.lax.dot_general(
                d.astype(compute_dtype), w_k, dims, preferred_element_type=_F32
            )
        dc_prev = dc * f + (1.0 - m) * dc_c
        return dh_prev, dc_prev

    init = (dh_ref[...].astype(_F32), dc_ref[...].astype(_F32))
    dh0, dc0 = jax.lax.fori_loop(0, num_steps, body, init)
    dh0_ref[...] = dh0
    dc0_ref[...] = dc0


def lstm_backward(cell: Cell, params: PyTree, xs: Array, mask: Array | None,
                  saved: tuple[Array, Array], d_final: LSTMCarry, d_ys: Array, *,
                  reverse: bool, interpret: bool, block_b: int | None,
                  compiler_params: Any = None) -> tuple[PyTree, Array, LSTMCarry]:  # fmt: skip
    """The VJP of ``pallas_forward`` for ``LSTMCell``: the recurrent part in one backward
    kernel launch, then the weight gradients as large matmuls over all ``time * batch`` rows
    (``dW_hh = H_prev^T dA``, and the input projection's VJP of ``dA``).

    Returns ``(d_params, d_xs, d_carry)``."""
    num_steps, batch_shape = xs.shape[0], xs.shape[1:-1]
    hidden = cell.hidden_size
    compute_dtype = jnp.dtype(cell.compute_dtype(params))
    rows = 1
    for d in batch_shape:
        rows *= d
    flat = lambda a: a.reshape(num_steps, rows, a.shape[-1])
    hb, cb = (flat(v) for v in saved)
    xp = flat(cell.project_inputs(params, xs))
    m = jnp.ones((num_steps, rows, 1), _F32) if mask is None else flat(mask[..., None].astype(_F32))
    dys = flat(d_ys.astype(_F32))
    dh, dc = (v.reshape(rows, hidden).astype(_F32) for v in d_final)
    tile = block_b or (rows if interpret else 16)
    padded = -(-max(rows, 1) // tile) * tile
    if padded != rows:  # padded rows have mask 0: zero gradients, dropped below
        pad3 = ((0, 0), (0, padded - rows), (0, 0))
        hb, cb, xp, m, dys = (jnp.pad(a, pad3) for a in (hb, cb, xp, m, dys))
        dh, dc = (jnp.pad(a, ((0, padded - rows), (0, 0))) for a in (dh, dc))
    gates = 4 * hidden
    seq = lambda width: pl.BlockSpec((num_steps, tile, width), lambda b: (0, b, 0))
    row_spec = pl.BlockSpec((tile, hidden), lambda b: (b, 0))
    kernel = functools.partial(
        _lstm_backward_kernel,
        num_steps=num_steps,
        hidden=hidden,
        reverse=reverse,
        compute_dtype=compute_dtype,
    )
    da, dh0, dc0 = pl.pallas_call(
        kernel,
        out_shape=[
            jax.ShapeDtypeStruct((num_steps, padded, gates), _F32),
            jax.ShapeDtypeStruct((padded, hidden), _F32),
            jax.ShapeDtypeStruct((padded, hidden), _F32),
        ],
        grid=(padded // tile,),
        in_specs=[
            seq(gates),
            seq(1),
            pl.BlockSpec((hidden, gates), lambda b: (0, 0)),
            seq(hidden),
            seq(hidden),
            seq(hidden),
            row_spec,
            row_spec,
        ],
        out_specs=[seq(gates), row_spec, row_spec],
        interpret=interpret,
        compiler_params=compiler_params,
        name="lstm_jax_lstm_recurrence_backward",
    )(xp, m, params.w_hh.astype(compute_dtype), hb, cb, dys, dh, dc)
    da = da[:, :rows].reshape(num_steps, *batch_shape, gates)
    h_prev = saved[0]
    # The large matmuls: the input projection's VJP (dW_ih, db, dxs) and dW_hh = H^T dA.
    _, vjp_in = jax.vjp(lambda p, x: cell.project_inputs(p, x), params, xs)
    d_params, d_xs = vjp_in(da)
    carries = LSTMCarry(h=h_prev, c=saved[1])
    _, vjp_rec = jax.vjp(lambda p: cell.recurrent_projection(p, carries), params)
    (d_rec,) = vjp_rec(da)
    d_params = jax.tree_util.tree_map(
        lambda a, b: a if b is None else a + b, d_params, d_rec, is_leaf=lambda x: x is None
    )
    carry_dtype = cell.resolved_carry_dtype()
    d_carry = LSTMCarry(
        h=dh0[:rows].reshape(*batch_shape, hidden).astype(carry_dtype),
        c=dc0[:rows].reshape(*batch_shape, hidden).astype(carry_dtype),
    )
    return d_params, d_xs, d_carry


def has_backward_kernel(cell: Cell) -> bool:
    """The backward kernel covers the plain ``LSTMCell`` with a float32 carry; other cells
    differentiate through the split backward in plain JAX."""
    return type(cell) is LSTMCell and cell.resolved_carry_dtype() == jnp.dtype(_F32)


def pallas_scan(cell: Cell, params: PyTree, xs: Array, carry: PyTree, mask: Array | None, *,
                reverse: bool, interpret: bool, block_b: int | None = None,
                compiler_params: Any = None) -> tuple[PyTree, Array]:  # fmt: skip
    """``pallas_forward`` with a derivative: the split backward of ``lstm_jax._split``, run in
    plain JAX (it recomputes the forward scan for the carries it needs)."""
    options = dict(reverse=reverse, interpret=interpret, block_b=block_b)
    options["compiler_params"] = compiler_params

    @jax.custom_vjp
    def run(params, xs, carry, mask):
        return pallas_forward(cell, params, xs, carry, mask, **options)

    def fwd(params, xs, carry, mask):
        if has_backward_kernel(cell):
            final, ys, saved = pallas_forward(cell, params, xs, carry, mask, save=True, **options)
            return (final, ys), (params, xs, carry, mask, saved)
        return run(params, xs, carry, mask), (params, xs, carry, mask, None)

    def bwd(res, ct):
        params, xs, carry, mask, saved = res
        if saved is not None:
            d_final, d_ys = ct
            grads = lstm_backward(cell, params, xs, mask, saved, d_final, d_ys, **options)
            return (*grads, None)
        split = lambda p, x, c: split_scan(cell, p, x, c, mask, reverse=reverse)
        _, vjp = jax.vjp(split, params, xs, carry)
        return (*vjp(ct), None)

    run.defvjp(fwd, bwd)
    return run(params, xs, carry, mask)


def _triton_params() -> Any:
    from jax.experimental.pallas import triton as plgpu

    return plgpu.CompilerParams(num_warps=4, num_stages=1)


def platform_scan(cell: Cell, params: PyTree, xs: Array, carry: PyTree, mask: Array | None, *,
                  reverse: bool, interpret: bool | None,
                  block_b: int | None) -> tuple[PyTree, Array]:  # fmt: skip
    """``pallas_scan`` for the platform the call is lowered for: interpret mode on CPU,
    Triton on CUDA/ROCm, Mosaic on TPU (``lax.platform_dependent`` lowers only the branch of
    the target, so exporting from CPU for ``cuda`` or ``tpu`` gets the compiled kernel).
    ``interpret`` True or False forces one of them everywhere."""
    run = functools.partial(pallas_scan, cell, reverse=reverse, block_b=block_b)
    args = (params, xs, carry, mask)
    if interpret is not None:
        params_ = None if interpret else _triton_params_or_none()
        return run(*args, interpret=interpret, compiler_params=params_)
    return jax.lax.platform_dependent(
        *args,
        cpu=lambda *a: run(*a, interpret=True),
        cuda=lambda *a: run(*a, interpret=False, compiler_params=_triton_params()),
        rocm=lambda *a: run(*a, interpret=False, compiler_params=_triton_params()),
        tpu=lambda *a: run(*a, interpret=False),
    )


def _triton_params_or_none() -> Any:
    return _triton_params() if jax.default_backend() == "gpu" else None


@register_impl
class Pallas:
    """The fused recurrence kernel of ``lstm_jax._pallas``.

    ``interpret``: None picks per platform at lowering (interpret mode on CPU, Triton on GPU,
    Mosaic on TPU); True forces interpret mode, False the compiled kernel of the default
    backend. ``block_b``: batch rows per program (None: 16 on GPU, the whole batch otherwise).
    """

    interpret: bool | None = None
    block_b: int | None = None
    name = "pallas"

    def __post_init__(self) -> None:
        if self.interpret is not None and not isinstance(self.interpret, bool):
            raise TypeError(f"Pallas: interpret must be None or a bool, got {self.interpret!r}")
        if self.block_b is not None and (
            isinstance(self.block_b, bool) or not isinstance(self.block_b, int) or self.block_b < 1
        ):
            raise ValueError(
                f"Pallas: block_b must be None or a positive int, got {self.block_b!r}"
            )

    def run(self, cell, params, xs, carry, mask, *, reverse, resets=None, reset_carry=None):
        if resets is not None:
            raise NotImplementedError(
                "impl='pallas' does not reset the carry inside a row (resets); use impl='split'"
            )
        check_supported(cell)
        options = dict(reverse=reverse, interpret=self.interpret, block_b=self.block_b)
        return platform_scan(cell, params, xs, carry, mask, **options)
