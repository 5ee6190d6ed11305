"""Every cell and layer through the same JAX transformations.

One list, ``CASES``: adding a cell or a layer there covers it by

* jit == eager (and == ``jax.disable_jit``, where the scan runs as a Python loop);
* ``vmap`` of the unbatched call == the batched call (seq_lengths included);
* ``grad`` under ``jit`` == eager ``grad``, finite, with NaN past every length;
* forward mode: ``jax.jvp`` along a random direction == the directional derivative that
  ``grad`` gives, with the default ``impl``.

Each case maps ``(params, xs [*batch, time, input], seq_lengths [*batch])`` to a pytree of
outputs; a cell's case runs one ``step`` and an ``unroll`` with lengths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import lstm_jax

B, T, IN, H = ref.BATCH, ref.TIME, ref.INPUT, ref.HIDDEN
LENGTHS = np.array([T, 2, 0], np.int32)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    init: Callable[[int], Any]  # seed -> params
    apply: Callable[[Any, jax.Array, jax.Array], Any]
    vmappable: bool = True  # False where the batched call is not a map over rows (dropout)


def _label(options: dict) -> str:
    """A test id that is the same in every pytest-xdist worker (no object addresses)."""
    return ",".join(f"{k}={'callable' if callable(v) else v}" for k, v in options.items())


def _cell_case(name: str, cell: lstm_jax.Cell | None = None) -> Case:
    """A cell's case; ``cell`` for cells that have no NumPy reference in ``reference.py``
    (theirs are in their own test files)."""
    cell = ref.make_cell(name) if cell is None else cell

    def apply(params, xs, lengths):
        c0 = cell.initial_carry(xs.shape[:-2])
        # step knows nothing of lengths: feed it the first step only where it is valid
        x0 = jnp.where((lengths > 0)[..., None], xs[..., 0, :], jnp.zeros_like(xs[..., 0, :]))
        step = cell.step(params, c0, x0)
        return step, lstm_jax.unroll(cell, params, xs, seq_lengths=lengths, initial_carry=c0)

    return Case(f"cell:{name}", lambda seed: ref.random_params(cell, IN, seed), apply)


def _unroll_case(name: str, **options) -> Case:
    cell = ref.make_cell(name)
    label = _label(options)
    return Case(
        f"unroll:{name}:{label}",
        lambda seed: ref.random_params(cell, IN, seed),
        lambda p, xs, lengths: lstm_jax.unroll(cell, p, xs, seq_lengths=lengths, **options),
    )


def _bidirectional_case(name: str, backward: str | None = None, **options) -> Case:
    cell = ref.make_cell(name)
    bcell = ref.make_cell(backward) if backward else cell
    label = _label({"backward": backward, **options} if backward else options)
    return Case(
        f"bidirectional:{name}:{label}",
        lambda seed: (ref.random_params(cell, IN, seed), ref.random_params(bcell, IN, seed + 1)),
        lambda p, xs, lengths: lstm_jax.bidirectional(
            cell, p, xs, seq_lengths=lengths, backward_cell=bcell, **options
        ),
    )


def _stack_case(label: str, net: lstm_jax.Stack, dropout_key: int | None = None) -> Case:
    def apply(p, xs, lengths):
        key = None if dropout_key is None else jax.random.key(dropout_key)
        return net.apply(p, xs, seq_lengths=lengths, dropout_key=key)

    return Case(
        f"stack:{label}",
        lambda seed: ref.random_params(net, IN, seed),
        apply,
        vmappable=dropout_key is None,
    )


CASES = [
    *(_cell_case(name) for name in ref.CELL_NAMES),
    _cell_case("lstmp", lstm_jax.cells.lstmp.LSTMPCell(H, 2)),
    _cell_case("layer_norm_lstm", lstm_jax.cells.layer_norm.LayerNormLSTMCell(H)),
    _cell_case("layer_norm_gru", lstm_jax.cells.layer_norm.LayerNormGRUCell(H)),
    _cell_case("mgu", lstm_jax.cells.mgu.MGUCell(H)),
    _cell_case("min_gru", lstm_jax.cells.min_rnn.MinGRUCell(H)),
    _cell_case("min_lstm", lstm_jax.cells.min_rnn.MinLSTMCell(H)),
    _cell_case("slstm heads=2", lstm_jax.cells.slstm.SLSTMCell(H, num_heads=2)),
    _cell_case("slstm exp", lstm_jax.cells.slstm.SLSTMCell(H, forget_gate="exp")),
    _unroll_case("lstm", reverse=True, impl="scan"),
    _unroll_case("peephole", reverse=True, impl=lstm_jax.Split(unroll=2, hoist=True)),
    _unroll_case("simple_tanh", impl=lstm_jax.Chunked(every=2), time_major=False),
    _bidirectional_case("lstm", merge="mean"),
    Case(
        "unroll:min_gru:impl=parallel,reverse=True",
        lambda seed: ref.random_params(lstm_jax.cells.min_rnn.MinGRUCell(H), IN, seed),
        lambda p, xs, lengths: lstm_jax.unroll(
            lstm_jax.cells.min_rnn.MinGRUCell(H),
            p,
            xs,
            seq_lengths=lengths,
            reverse=True,
            impl="parallel",
        ),
    ),
    _stack_case(
        "lstmp x2 bi", lstm_jax.stack(lstm_jax.cells.lstmp.LSTMPCell(H, 2), 2, bidirectional=True)
    ),
    _bidirectional_case("gru_reset_after", backward="cifg", merge=lambda f, b: f * b + 1.0),
    _stack_case("lstm x2 uni residual", lstm_jax.stack(lstm_jax.lstm(H), 2, residual=True)),
    _stack_case(
        "gru,simple x2 bi dropout",
        lstm_jax.stack(
            [lstm_jax.gru(H), lstm_jax.simple_rnn(H)], 2, bidirectional=True, dropout=0.3
        ),
        dropout_key=7,
    ),
]
IDS = [case.name for case in CASES]


def _inputs(seed=0, garbage=None):
    xs = ref.random_array((B, T, IN), seed=seed + 100)
    if garbage is not None:
        xs = ref.with_garbage(xs, LENGTHS, garbage)
    return xs, jnp.asarray(LENGTHS)


def _loss(case):
    def loss(params, xs, lengths):
        leaves = jax.tree_util.tree_leaves(case.apply(params, xs, lengths))
        return sum(jnp.sum(jnp.sin(leaf.astype(jnp.float32))) for leaf in leaves)

    return loss


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jit_equals_eager(case):
    params = case.init(0)
    xs, lengths = _inputs()
    eager = case.apply(params, xs, lengths)
    jitted = jax.jit(case.apply)(params, xs, lengths)
    ref.assert_trees_close(jitted, eager, atol=1e-6, rtol=1e-6)
    with jax.disable_jit():
        python_loop = case.apply(params, xs, lengths)
    ref.assert_trees_close(python_loop, eager, atol=1e-6, rtol=1e-6)


VMAPPABLE = [case for case in CASES if case.vmappable]


@pytest.mark.parametrize("case", VMAPPABLE, ids=[case.name for case in VMAPPABLE])
def test_vmap_of_unbatched_equals_batched(case):
    params = case.init(1)
    xs, lengths = _inputs(1, garbage=np.nan)
    batched = case.apply(params, xs, lengths)
    mapped = jax.vmap(case.apply, in_axes=(None, 0, 0))(params, xs, lengths)
    ref.assert_trees_close(mapped, batched, atol=1e-6, rtol=1e-6)
    ref.assert_all_finite(batched)
    # Two batch dimensions, mapped twice.
    xs2 = jnp.stack([xs, xs[::-1]])
    lengths2 = jnp.stack([lengths, lengths[::-1]])
    batched2 = case.apply(params, xs2, lengths2)
    mapped2 = jax.vmap(jax.vmap(case.apply, in_axes=(None, 0, 0)), in_axes=(None, 0, 0))(
        params, xs2, lengths2
    )
    ref.assert_trees_close(mapped2, batched2, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_grad_under_jit_is_finite_and_equals_eager_grad(case):
    """NaN past every length: the gradients wrt params and inputs must not notice."""
    params = case.init(2)
    xs, lengths = _inputs(2, garbage=np.nan)
    grad = jax.grad(_loss(case), argnums=(0, 1))
    eager = grad(params, xs, lengths)
    jitted_grad = jax.jit(grad)
    jitted = jitted_grad(params, xs, lengths)
    ref.assert_all_finite(eager)
    ref.assert_all_finite(jitted)
    ref.assert_trees_close(jitted, eager, atol=1e-6, rtol=1e-5)
    clean_xs, _ = _inputs(2)
    ref.assert_trees_close(jitted_grad(params, clean_xs, lengths), jitted, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_mode_agrees_with_reverse_mode(case):
    params = case.init(3)
    xs, lengths = _inputs(3)
    loss = _loss(case)
    direction = jax.tree_util.tree_map(
        lambda a, b: jnp.asarray(b, a.dtype), params, ref.random_params_like(params, seed=31)
    )
    _, tangent = jax.jvp(lambda p: loss(p, xs, lengths), (params,), (direction,))
    grads = jax.grad(loss)(params, xs, lengths)
    pairs = zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(direction), strict=True)
    expected = sum(jnp.vdot(g, d) for g, d in pairs)
    np.testing.assert_allclose(float(tangent), float(expected), rtol=1e-4, atol=1e-5)


def test_cells_are_static_arguments_of_jit_and_equal_cells_share_a_trace():
    traces = []

    @jax.jit
    def run(cell, params, xs):
        traces.append(cell)
        return lstm_jax.unroll(cell, params, xs)

    params = ref.random_params(lstm_jax.lstm(H), IN)
    xs, _ = _inputs()
    first = run(lstm_jax.lstm(H), params, xs)
    second = run(lstm_jax.lstm(H), params, xs)  # an equal, distinct cell object
    ref.assert_trees_equal(first, second)
    assert len(traces) == 1
    run(lstm_jax.lstm(H, forget_bias=2.0), params, xs)  # a different configuration retraces
    assert len(traces) == 2
