"""impl="pallas": the fused recurrence kernel (lstm_jax/_pallas.py).

On this CPU machine the kernel runs in Pallas' interpret mode, which executes the same kernel
body (the time loop, the per-gate ``pl.ds`` reads, the masking) that Triton and Mosaic compile.
Numbers are checked against the float64 NumPy loop of ``reference.py`` and against the scan,
gradients against the scan's autodiff; the lowering tests export the kernel for ``cuda`` and
``tpu`` from here and look for the Triton / Mosaic custom call in the module.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import lstm_jax

B, T, IN, H = 3, 5, 2, 4
LENGTHS = np.array([5, 2, 0])
SUPPORTED = ("lstm", "peephole", "cifg", "gru_reset_after", "simple_tanh", "simple_relu")


def _inputs(cell, seed=0, dtype=jnp.float32):
    params = ref.random_params(cell, IN, seed=seed)
    xs = ref.random_array((B, T, IN), seed=seed + 1, dtype=dtype)
    carry = ref.random_carry(cell, (B,), seed=seed + 2)
    return params, xs, carry


def _both_directions(cell, impl):
    """One jitted function (one compile) running forward and reverse."""

    @jax.jit
    def run(params, xs, carry, lengths):
        options = dict(initial_carry=carry, seq_lengths=lengths, impl=impl)
        fwd = lstm_jax.unroll(cell, params, xs, **options)
        bwd = lstm_jax.unroll(cell, params, xs, reverse=True, **options)
        return fwd, bwd

    return run


@pytest.mark.parametrize("name", SUPPORTED)
def test_pallas_equals_reference_and_scan_on_padded_batch(name):
    cell = ref.make_cell(name, H)
    params, xs, carry = _inputs(cell)
    lengths = jnp.asarray(LENGTHS)
    got = _both_directions(cell, "pallas")(params, xs, carry, lengths)
    want = _both_directions(cell, "scan")(params, xs, carry, lengths)
    kind = ref.kind_of(cell)
    for reverse, (g, w) in zip((False, True), zip(got, want, strict=True), strict=True):
        expected_carry, expected_ys, _ = ref.ref_unroll(
            kind, params, xs, LENGTHS, ref.np_carry(carry), reverse=reverse
        )
        ref.assert_close(g[1], expected_ys, err_msg=f"{name} reverse={reverse}")
        ref.assert_carry_close(g[0], expected_carry)
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5), g, w
        )


def _loss(cell, impl):
    run = _both_directions(cell, impl)

    def loss(params, xs, carry, lengths):
        (c_f, y_f), (c_b, y_b) = run(params, xs, carry, lengths)
        weights = jnp.linspace(-1.0, 1.0, H, dtype=jnp.float32).reshape(1, 1, H)
        y_f, y_b = y_f.astype(jnp.float32), y_b.astype(jnp.float32)
        total = jnp.sum(y_f * weights) + jnp.sum(jnp.sin(y_b))
        for leaf in jax.tree_util.tree_leaves((c_f, c_b)):
            total = total + jnp.sum(leaf * leaf)
        return total

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


@pytest.mark.parametrize("name", ["lstm", pytest.param("gru_reset_after", marks=pytest.mark.slow)])
def test_pallas_gradients_equal_scan(name):
    cell = ref.make_cell(name, H)
    params, xs, carry = _inputs(cell, seed=3)
    lengths = jnp.asarray(LENGTHS)
    got = _loss(cell, "pallas")(params, xs, carry, lengths)
    want = _loss(cell, "scan")(params, xs, carry, lengths)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5), got, want
    )


def test_pallas_bf16_compute_keeps_f32_cell_state_and_matches_scan():
    # bf16 matmul inputs, float32 accumulation, gates and cell state: the kernel and the scan
    # round the same values, so they agree to a few bf16 ulps (2e-2 on values of order 1).
    cell = lstm_jax.lstm(H, dtype=jnp.bfloat16)
    params, xs, carry = _inputs(cell, seed=5)
    lengths = jnp.asarray(LENGTHS)
    got = _both_directions(cell, "pallas")(params, xs, carry, lengths)
    want = _both_directions(cell, "scan")(params, xs, carry, lengths)
    for g, w in zip(got, want, strict=True):
        assert g[1].dtype == jnp.bfloat16 and g[0].c.dtype == jnp.float32
        np.testing.assert_allclose(
            np.asarray(g[1], np.float32), np.asarray(w[1], np.float32), atol=2e-2
        )
        np.testing.assert_allclose(g[0].c, w[0].c, atol=2e-2)


@pytest.mark.slow
def test_pallas_bf16_gradients_close_to_scan():
    # The backward kernel recomputes the gates from bf16 matmul inputs like the scan's
    # autodiff; gradients of order 1 agree to 5e-2.
    cell = lstm_jax.lstm(H, dtype=jnp.bfloat16)
    params, xs, carry = _inputs(cell, seed=9)
    lengths = jnp.asarray(LENGTHS)
    got = _loss(cell, "pallas")(params, xs, carry, lengths)
    want = _loss(cell, "scan")(params, xs, carry, lengths)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(
            np.asarray(a, np.float32), np.asarray(b, np.float32), atol=5e-2, rtol=5e-2
        ),
        got,
        want,
    )


def test_pallas_names_an_unsupported_cell():
    cell = ref.make_cell("gru_reset_before", H)
    params, xs, _ = _inputs(cell)
    with pytest.raises(TypeError, match=r"impl='pallas' has no kernel for GRUCell\("):
        lstm_jax.unroll(cell, params, xs, impl="pallas")


def test_pallas_refuses_resets():
    cell = lstm_jax.lstm(H)
    params, xs, _ = _inputs(cell)
    starts = jnp.zeros((B, T), bool).at[:, 0].set(True)
    with pytest.raises(NotImplementedError, match="resets"):
        lstm_jax.unroll(cell, params, xs, resets=starts, impl="pallas")


# ---- lowering for the accelerators, from this CPU machine ---------------------------------
# Triton's block shapes must be powers of two and tl.dot needs 16 rows: hidden 16, and the
# batch of 3 is padded to one tile of 16 rows inside.
LOWER_H = 16
TRITON = "__gpu$xla.gpu.triton"


def _export(cell, platform, *, grad=False):
    params = cell.init(jax.random.key(0), 8)
    xs = jnp.zeros((B, T, 8), jnp.float32)
    lengths = jnp.asarray(LENGTHS)

    def forward(params, xs, lengths):
        return lstm_jax.unroll(cell, params, xs, seq_lengths=lengths, reverse=True, impl="pallas")

    def loss(params, xs, lengths):
        return jnp.sum(forward(params, xs, lengths)[1])

    fn = jax.value_and_grad(loss) if grad else forward
    checks = [jax.export.DisabledSafetyCheck.custom_call(TRITON)]
    exported = jax.export.export(jax.jit(fn), platforms=[platform], disabled_checks=checks)
    return exported(params, xs, lengths).mlir_module()


@pytest.mark.parametrize("cell", [lstm_jax.lstm(LOWER_H), lstm_jax.gru(LOWER_H)], ids=str)
def test_pallas_lowers_to_triton_for_cuda(cell):
    module = _export(cell, "cuda")
    assert TRITON in module
    assert "tpu_custom_call" not in module


@pytest.mark.parametrize("cell", [lstm_jax.lstm(LOWER_H), lstm_jax.gru(LOWER_H)], ids=str)
def test_pallas_lowers_to_mosaic_for_tpu(cell):
    module = _export(cell, "tpu")
    assert "tpu_custom_call" in module
    assert TRITON not in module


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_lstm_training_step_lowers_forward_and_backward_kernels(platform):
    # LSTMCell: the forward kernel (saving the carries) and the backward kernel.
    module = _export(lstm_jax.lstm(LOWER_H), platform, grad=True)
    call = TRITON if platform == "cuda" else "tpu_custom_call"
    assert module.count(call) == 2


def test_gru_training_step_lowers_with_the_split_backward():
    # Other cells: the kernel gives the value; the backward is the split backward in plain JAX.
    module = _export(lstm_jax.gru(LOWER_H), "cuda", grad=True)
    assert module.count(TRITON) == 1


def test_triton_lowering_names_a_hidden_size_that_is_not_a_power_of_two():
    with pytest.raises(ValueError, match="power-of-two hidden_size, got 12"):
        _export(lstm_jax.lstm(12), "cuda")
