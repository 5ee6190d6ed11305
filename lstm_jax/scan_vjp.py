"""The recurrence with a cuDNN-style backward pass (a custom VJP).

Autodiff of ``lax.scan`` differentiates each step whole: inside the backward loop it computes,
per step, the input gradient ``dxp @ W_ih^T``, the weight gradients ``x^T dxp`` and
``h^T dhh`` and adds them into ``[input, gates]`` and ``[hidden, gates]`` accumulators that
stream through memory at every step. Here only what truly recurs stays in the loop: the
step's elementwise VJP and ``dh = dhh @ W_hh^T``. The rest becomes three large matmuls over all
``time * batch`` rows after the loop::

    dW_hh = H_prev^T dHH      dW_ih = X^T dXP      dX = dXP W_ih^T      db = sum(dXP)

The forward pass saves the previous carry of every step and ``xp`` and ``hh``, or only their
sum for cells whose step reads nothing else (``cell.projections_add``: the LSTM family and the
Elman RNN), which halves that memory and the cotangents written by the backward loop.

Needs a cell whose step splits around one recurrent matmul (``cell.splits_recurrence``): the
LSTM family, the Elman RNN and the reset-after GRU. Forward-mode differentiation (``jax.jvp``,
``jax.jacfwd``) is not defined for a custom VJP; use ``custom_vjp=False`` in ``unroll`` for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from lstm_jax import lanes
from lstm_jax.cells.base import Cell, accumulation_dtype
from lstm_jax.typing import Array, PyTree


def _rows(a: Array) -> Array:
    """``[time, *batch, features]`` -> ``[time * prod(batch), features]``."""
    return a.reshape(-1, a.shape[-1])


def _tree_add(a: PyTree, b: PyTree) -> PyTree:
    return jax.tree_util.tree_map(jnp.add, a, b)


def scan_split_vjp(
    cell: Cell,
    params: PyTree,
    xs: Array,
    carry: PyTree,
    mask: Array | None,
    *,
    reverse: bool,
    unroll: int | bool,
    hoist_projection: bool,
    lane_bounds: Sequence[tuple[int, int]] = ((0, 1),),
) -> tuple[PyTree, Array]:
    """Same contract as ``unroll.scan_time_major`` (without gates), with the custom backward.

    Args:
      xs: ``[time, *batch, input]``, zero where ``mask`` is False.
      carry: initial carry, leaves ``[*batch, hidden]``.
      mask: ``[time, *batch]`` booleans or None.
      lane_bounds: row ranges of the batch lanes (``lstm_jax.lanes``) that both loops run as
        independent chains; more than one needs exactly one batch axis.

    Returns:
      ``(final_carry, ys [time, *batch, hidden])``.
    """
    has_mask = mask is not None
    sums = cell.projections_add
    # custom_vjp differentiates every argument: pass the mask as floats, its cotangent is zero.
    maskf = mask.astype(jnp.float32) if has_mask else jnp.zeros((0,), jnp.float32)

    def step(params, carry, x, m, hoisted_xp=None):
        xp = hoisted_xp if hoisted_xp is not None else cell.project_inputs(params, x)
        hh = cell.recurrent_projection(params, carry)
        new_carry, y, _ = cell.recur_from_projections(params, carry, xp, hh)
        if has_mask:
            keep = m[..., None] > 0
            new_carry = jax.tree_util.tree_map(lambda n, o: jnp.where(keep, n, o), new_carry, carry)
            y = jnp.where(keep, y, jnp.zeros_like(y))
        return new_carry, y, xp, hh

    def forward(params, xs, carry, maskf, save):
        xps = cell.project_inputs(params, xs) if hoist_projection else None
        step_mask = maskf if has_mask else None

        def lane_step(carry, inp):
            x, xp_in, m = inp
            new_carry, y, xp, hh = step(params, carry, x, m, xp_in)
            # A cell whose step reads only xp + hh needs one [*batch, gates] residual, not two.
            saved = None
            if save:
                saved = (carry, xp + hh, None) if sums else (carry, xp, hh)
            return new_carry, (y, saved)

        inputs = (None if hoist_projection else xs, xps, step_mask)
        lane_carries, outputs = jax.lax.scan(
            lanes.in_lanes(lane_step, lane_bounds),
            tuple(lanes.split(carry, lane_bounds)),
            inputs,
            reverse=reverse,
            unroll=unroll,
        )
        return lanes.join(lane_carries), outputs

    @jax.custom_vjp
    def run(params, xs, carry, maskf):
        final, (ys, _) = forward(params, xs, carry, maskf, save=False)
        return final, ys

    def run_fwd(params, xs, carry, maskf):
        final, (ys, saved) = forward(params, xs, carry, maskf, save=True)
        return (final, ys), (params, xs, maskf, saved)

    def run_bwd(residuals, cotangents):
        params, xs, maskf, (carries, xps, hhs) = residuals
        d_final, d_ys = cotangents
        cdt = cell.compute_dtype(params)
        acc = accumulation_dtype(cdt)
        w_hh_t = params.w_hh.astype(cdt).T
        step_params = {name: getattr(params, name) for name in cell.step_param_fields}
        step_params = {k: v for k, v in step_params.items() if v is not None}

        def core(step_params, carry, xp, hh):
            new_carry, y, _ = cell.recur_from_projections(
                params._replace(**step_params), carry, xp, hh
            )
            return new_carry, y

        def core_of_sum(step_params, carry, z):
            return core(step_params, carry, z, jnp.zeros_like(z))

        def lane_step(d_carry, inp):
            carry_prev, xp, hh, d_y, m = inp
            if has_mask:
                keep = m[..., None] > 0
                d_through = jax.tree_util.tree_map(
                    lambda d: jnp.where(keep, jnp.zeros_like(d), d), d_carry
                )
                d_carry = jax.tree_util.tree_map(
                    lambda d: jnp.where(keep, d, jnp.zeros_like(d)), d_carry
                )
                d_y = jnp.where(keep, d_y, jnp.zeros_like(d_y))
            if sums:  # xp holds xp + hh; both have its cotangent
                _, core_vjp = jax.vjp(core_of_sum, step_params, carry_prev, xp)
                d_sp, d_prev, d_xp = core_vjp((d_carry, d_y))
                d_hh = d_xp
            else:
                _, core_vjp = jax.vjp(core, step_params, carry_prev, xp, hh)
                d_sp, d_prev, d_xp, d_hh = core_vjp((d_carry, d_y))
            # hh = carry_hidden(carry) @ w_hh: the only matmul left inside the loop.
            d_h = jnp.matmul(d_hh.astype(cdt), w_hh_t, preferred_element_type=acc)
            _, hidden_vjp = jax.vjp(cell.carry_hidden, carry_prev)
            (d_prev_h,) = hidden_vjp(d_h.astype(cell.carry_hidden(carry_prev).dtype))
            d_prev = _tree_add(d_prev, d_prev_h)
            if has_mask:
                d_prev = _tree_add(d_prev, d_through)
            return d_prev, d_sp, (d_xp, None if sums else d_hh)

        def body(state, inp):
            lane_d_carries, d_step_params = state
            results = [
                lane_step(d_carry, lane_inp)
                for d_carry, lane_inp in zip(
                    lane_d_carries, lanes.split(inp, lane_bounds), strict=True
                )
            ]
            for _, d_sp, _ in results:
                d_step_params = _tree_add(d_step_params, d_sp)
            outputs = lanes.join([r[2] for r in results])
            return (tuple(r[0] for r in results), d_step_params), outputs

        zeros_sp = jax.tree_util.tree_map(jnp.zeros_like, step_params)
        step_mask = maskf if has_mask else None
        (lane_d_carry0, d_sp), (d_xps, d_hhs) = jax.lax.scan(
            body,
            (tuple(lanes.split(d_final, lane_bounds)), zeros_sp),
            (carries, xps, hhs, d_ys, step_mask),
            reverse=not reverse,
            unroll=unroll,
        )
        d_carry0 = lanes.join(lane_d_carry0)
        # Weight and input gradients: one large matmul each over all time steps and rows.
        h_prev = _rows(cell.carry_hidden(carries)).astype(cdt)
        x_rows = _rows(xs).astype(cdt)
        dxp_rows = _rows(d_xps)
        d_hh_rows = dxp_rows if sums else _rows(d_hhs)
        d_w_hh = jnp.matmul(h_prev.T, d_hh_rows.astype(cdt), preferred_element_type=acc)
        d_w_ih = jnp.matmul(x_rows.T, dxp_rows.astype(cdt), preferred_element_type=acc)
        d_xs = jnp.matmul(d_xps.astype(cdt), params.w_ih.astype(cdt).T, preferred_element_type=acc)
        d_params = params._replace(
            w_ih=d_w_ih.astype(params.w_ih.dtype),
            w_hh=d_w_hh.astype(params.w_hh.dtype),
            b=None if params.b is None else jnp.sum(dxp_rows, axis=0).astype(params.b.dtype),
            **{k: v.astype(getattr(params, k).dtype) for k, v in d_sp.items()},
        )
        return d_params, d_xs.astype(xs.dtype), d_carry0, jnp.zeros_like(maskf)

    run.defvjp(run_fwd, run_bwd)
    return run(params, xs, carry, maskf)
