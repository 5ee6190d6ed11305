"""Every public function validates its inputs at trace time, and the message names the argument
(and says what it got and what it wanted)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import lstm_jax

B, T, IN, H = 2, 3, 3, 2

LSTM = lstm_jax.lstm(H)
GRU = lstm_jax.gru(H)
LSTM_PARAMS = LSTM.init(jax.random.key(0), IN)
GRU_PARAMS = GRU.init(jax.random.key(0), IN)
XS = jnp.zeros((B, T, IN))
LENGTHS = jnp.array([3, 1], jnp.int32)


# ---- cell construction ----------------------------------------------------------------------


@pytest.mark.parametrize("factory", list(ref.CELL_FACTORIES.values()), ids=ref.CELL_NAMES)
@pytest.mark.parametrize(
    ("hidden_size", "error"),
    [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError), ("4", TypeError)],
    ids=str,
)
def test_bad_hidden_size(factory, hidden_size, error):
    with pytest.raises(error, match=r"hidden_size must be a positive int, got"):
        factory(hidden_size)


def test_bad_activation():
    with pytest.raises(ValueError, match=r"activation must be one of \['relu', 'tanh'\].*sigmoid"):
        lstm_jax.simple_rnn(H, activation="sigmoid")


@pytest.mark.parametrize(("input_size", "error"), [(0, ValueError), (2.0, TypeError)], ids=str)
@pytest.mark.parametrize("name", ["lstm", "gru_reset_after", "simple_tanh"])
def test_init_bad_input_size(name, input_size, error):
    with pytest.raises(error, match=r"init: input_size must be a positive int"):
        ref.make_cell(name).init(jax.random.key(0), input_size)


def test_initial_carry_bad_batch_shape():
    with pytest.raises(ValueError, match=r"batch_shape must be non-negative"):
        LSTM.initial_carry((2, -1))
    with pytest.raises(TypeError, match=r"batch_shape must be a tuple of ints"):
        GRU.initial_carry((2, None))


def test_initial_carry_rejects_a_string_batch_shape():
    """A str is iterable: "23" must not silently become the batch shape (2, 3)."""
    with pytest.raises(TypeError, match=r"batch_shape must be a tuple of ints"):
        GRU.initial_carry("23")


# ---- step -------------------------------------------------------------------------------------


def test_step_wrong_feature_size():
    with pytest.raises(
        ValueError, match=r"step: x must have shape \[\*batch, input\] with input=3"
    ):
        LSTM.step(LSTM_PARAMS, LSTM.initial_carry((B,)), jnp.zeros((B, IN + 1)))


def test_step_scalar_x():
    with pytest.raises(
        ValueError, match=r"step: x must have shape \[\*batch, input\], got a scalar"
    ):
        GRU.step(GRU_PARAMS, GRU.initial_carry(), jnp.float32(1.0))


def test_step_integer_x():
    with pytest.raises(TypeError, match=r"step: x must have a floating dtype, got int32"):
        GRU.step(GRU_PARAMS, GRU.initial_carry((B,)), jnp.zeros((B, IN), jnp.int32))


def test_step_x_not_an_array():
    with pytest.raises(TypeError, match=r"step: x must be an array, got list"):
        GRU.step(GRU_PARAMS, GRU.initial_carry((B,)), [[0.0] * IN] * B)


def test_step_carry_as_plain_tuple():
    h = jnp.zeros((B, H))
    with pytest.raises(TypeError, match=r"step: carry has the wrong structure for lstm"):
        LSTM.step(LSTM_PARAMS, (h, h), jnp.zeros((B, IN)))


def test_step_carry_of_wrong_batch():
    with pytest.raises(ValueError, match=r"step: carry must have leaves of shape \(2, 2\)"):
        LSTM.step(LSTM_PARAMS, LSTM.initial_carry((B + 1,)), jnp.zeros((B, IN)))


def test_step_params_of_another_cell():
    with pytest.raises(TypeError, match=r"step: params has the wrong structure for lstm"):
        LSTM.step(GRU_PARAMS, LSTM.initial_carry((B,)), jnp.zeros((B, IN)))


# ---- unroll -----------------------------------------------------------------------------------


def test_unroll_wrong_feature_size():
    with pytest.raises(ValueError, match=r"unroll: xs must have shape \[\*batch, time, input\]"):
        lstm_jax.unroll(LSTM, LSTM_PARAMS, jnp.zeros((B, T, IN + 1)))


def test_unroll_wrong_feature_size_time_major():
    with pytest.raises(ValueError, match=r"unroll: xs must have shape \[time, \*batch, input\]"):
        lstm_jax.unroll(LSTM, LSTM_PARAMS, jnp.zeros((T, B, IN + 1)), time_major=True)


def test_unroll_one_dimensional_xs():
    with pytest.raises(ValueError, match=r"unroll: xs must have shape .*at least 2 dimensions"):
        lstm_jax.unroll(LSTM, LSTM_PARAMS, jnp.zeros((IN,)))


def test_unroll_integer_xs():
    with pytest.raises(TypeError, match=r"unroll: xs must have a floating dtype"):
        lstm_jax.unroll(LSTM, LSTM_PARAMS, jnp.zeros((B, T, IN), jnp.int32))


def test_unroll_float_seq_lengths():
    with pytest.raises(
        TypeError, match=r"unroll: seq_lengths must have an integer dtype, got float"
    ):
        lstm_jax.unroll(LSTM, LSTM_PARAMS, XS, seq_lengths=jnp.array([3.0, 1.0]))


@pytest.mark.parametrize("shape", [(B + 1,), (B, 1), ()], ids=str)
def test_unroll_seq_lengths_shape_mismatch(shape):
    with pytest.raises(ValueError, match=r"unroll: seq_lengths must have shape \(2,\)"):
        lstm_jax.unroll(LSTM, LSTM_PARAMS, XS, seq_lengths=jnp.ones(shape, jnp.int32))


def test_unroll_seq_lengths_not_an_array():
    with pytest.raises(TypeError, match=r"unroll: seq_lengths must be an array, got list"):
        lstm_jax.unroll(LSTM, LSTM_PARAMS, XS, seq_lengths=[3, 1])


def test_unroll_initial_carry_as_plain_tuple():
    h = jnp.zeros((B, H))
    with pytest.raises(TypeError, match=r"unroll: initial_carry has the wrong structure for lstm"):
        lstm_jax.unroll(LSTM, LSTM_PARAMS, XS, initial_carry=(h, h))


def test_unroll_initial_carry_lstm_carry_for_gru():
    with pytest.raises(TypeError, match=r"unroll: initial_carry has the wrong structure for gru"):
        lstm_jax.unroll(GRU, GRU_PARAMS, XS, initial_carry=LSTM.initial_carry((B,)))


@pytest.mark.parametrize("shape", [(B, H + 1), (H,), (1, B, H)], ids=str)
def test_unroll_initial_carry_wrong_shape(shape):
    with pytest.raises(
        ValueError, match=r"unroll: initial_carry must have leaves of shape \(2, 2\)"
    ):
        lstm_jax.unroll(GRU, GRU_PARAMS, XS, initial_carry=jnp.zeros(shape))


def test_unroll_integer_initial_carry():
    with pytest.raises(TypeError, match=r"unroll: initial_carry must have the cell's carry dtype"):
        lstm_jax.unroll(GRU, GRU_PARAMS, XS, initial_carry=jnp.zeros((B, H), jnp.int32))


def test_unroll_params_of_another_cell():
    with pytest.raises(TypeError, match=r"unroll: params has the wrong structure for lstm"):
        lstm_jax.unroll(LSTM, GRU_PARAMS, XS)


def test_unroll_lstm_params_for_cifg():
    """Same NamedTuple, 4 gate blocks instead of 3: the shapes are checked too."""
    with pytest.raises(ValueError, match=r"unroll: params does not fit cifg_lstm"):
        lstm_jax.unroll(lstm_jax.cifg_lstm(H), LSTM_PARAMS, XS)


def test_unroll_params_as_dict():
    with pytest.raises(TypeError, match=r"unroll: params must be the parameters of lstm"):
        lstm_jax.unroll(LSTM, LSTM_PARAMS._asdict(), XS)


def test_unroll_peephole_params_without_peepholes():
    with pytest.raises(TypeError, match=r"unroll: params has the wrong structure for peephole"):
        lstm_jax.unroll(lstm_jax.peephole_lstm(H), LSTM_PARAMS, XS)


def test_unroll_integer_params():
    bad = LSTM_PARAMS._replace(b=jnp.zeros((4 * H,), jnp.int32))
    with pytest.raises(ValueError, match=r"unroll: params does not fit lstm"):
        lstm_jax.unroll(LSTM, bad, XS)


def test_unroll_not_a_cell():
    with pytest.raises(TypeError, match=r"unroll: cell must be an lstm_jax cell"):
        lstm_jax.unroll("lstm", LSTM_PARAMS, XS)


@pytest.mark.parametrize("impl", ["fast", "fused", 3, None], ids=str)
def test_unroll_bad_impl(impl):
    with pytest.raises((TypeError, ValueError), match=r"unroll: impl must be 'auto', one of"):
        lstm_jax.unroll(LSTM, LSTM_PARAMS, XS, impl=impl)


def test_resolve_names_a_bad_impl():
    from lstm_jax.impl import resolve

    with pytest.raises(ValueError, match=r"resolve: impl must be 'auto', one of .* got 'fast'"):
        resolve("fast")
    assert resolve("auto", backend="tpu") == lstm_jax.Scan()  # never measured there


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: lstm_jax.Scan(unroll=0), r"Scan: unroll must be a positive int"),
        (lambda: lstm_jax.Split(unroll=True), r"Split: unroll must be a positive int"),
        (lambda: lstm_jax.Split(hoist="yes"), r"Split: hoist must be a bool"),
        (lambda: lstm_jax.Chunked(every=0), r"Chunked: every must be None or a positive int"),
        (lambda: lstm_jax.Chunked(every=2.0), r"Chunked: every must be None or a positive int"),
        (lambda: lstm_jax.Chunked(inner="chunked"), r"Chunked: inner must be 'scan' or 'split'"),
    ],
)
def test_bad_impl_options(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


def test_checks_run_under_jit():
    with pytest.raises(TypeError, match=r"unroll: seq_lengths must have an integer dtype"):
        jax.jit(lambda xs, n: lstm_jax.unroll(LSTM, LSTM_PARAMS, xs, seq_lengths=n))(
            XS, jnp.array([3.0, 1.0])
        )


# ---- bidirectional ----------------------------------------------------------------------------


def _bi(**kwargs):
    options = dict(params=(LSTM_PARAMS, LSTM_PARAMS), xs=XS)
    options.update(kwargs)
    params, xs = options.pop("params"), options.pop("xs")
    cell = options.pop("cell", LSTM)
    return lstm_jax.bidirectional(cell, params, xs, **options)


def test_bidirectional_unknown_merge():
    with pytest.raises(ValueError, match=r"bidirectional: merge must be one of .*'concat'.*max"):
        _bi(merge="max")


def test_bidirectional_params_not_a_pair():
    with pytest.raises(
        TypeError, match=r"bidirectional: params must be a pair \(forward, backward\)"
    ):
        _bi(params=LSTM_PARAMS)


def test_bidirectional_params_of_another_cell():
    with pytest.raises(TypeError, match=r"bidirectional: params\[1\] \(backward\) has the wrong"):
        _bi(params=(LSTM_PARAMS, GRU_PARAMS))


def test_bidirectional_input_sizes_disagree():
    other = LSTM.init(jax.random.key(1), IN + 1)
    with pytest.raises(ValueError, match=r"bidirectional: forward and backward params disagree"):
        _bi(params=(LSTM_PARAMS, other))


def test_bidirectional_backward_cell_not_a_cell():
    with pytest.raises(TypeError, match=r"bidirectional: backward_cell must be an lstm_jax cell"):
        _bi(backward_cell="gru")


def test_bidirectional_wrong_feature_size():
    with pytest.raises(ValueError, match=r"bidirectional: xs must have shape"):
        _bi(xs=jnp.zeros((B, T, IN + 1)))


def test_bidirectional_float_seq_lengths():
    with pytest.raises(TypeError, match=r"bidirectional: seq_lengths must have an integer dtype"):
        _bi(seq_lengths=jnp.array([3.0, 1.0]))


def test_bidirectional_seq_lengths_shape_mismatch():
    with pytest.raises(ValueError, match=r"bidirectional: seq_lengths must have shape \(2,\)"):
        _bi(seq_lengths=jnp.array([3, 1, 2], jnp.int32))


def test_bidirectional_initial_carry_not_a_pair():
    with pytest.raises(TypeError, match=r"bidirectional: initial_carry must be a pair"):
        _bi(cell=GRU, params=(GRU_PARAMS, GRU_PARAMS), initial_carry=GRU.initial_carry((B,)))


def test_bidirectional_one_lstm_carry_instead_of_a_pair():
    """LSTMCarry is itself a 2-tuple: it reads as (forward, backward) and each half is then
    rejected by name."""
    with pytest.raises(
        TypeError, match=r"bidirectional: initial_carry\[0\] \(forward\) has the wrong structure"
    ):
        _bi(initial_carry=LSTM.initial_carry((B,)))


def test_bidirectional_initial_carry_wrong_shape():
    good = LSTM.initial_carry((B,))
    with pytest.raises(
        ValueError, match=r"bidirectional: initial_carry\[1\] \(backward\) must have leaves"
    ):
        _bi(initial_carry=(good, LSTM.initial_carry((B + 1,))))


# ---- stack ------------------------------------------------------------------------------------


def test_stack_wrong_number_of_cells():
    with pytest.raises(ValueError, match=r"stack: cell must be one cell or 3 cells \(num_layers\)"):
        lstm_jax.stack([LSTM, LSTM], 3)


@pytest.mark.parametrize("num_layers", [0, -1, 1.0, True], ids=str)
def test_stack_bad_num_layers(num_layers):
    with pytest.raises(ValueError, match=r"stack: num_layers must be a positive int"):
        lstm_jax.stack(LSTM, num_layers)


@pytest.mark.parametrize("dropout", [1.0, -0.1, 1.5, "0.1"], ids=str)
def test_stack_bad_dropout(dropout):
    with pytest.raises(ValueError, match=r"stack: dropout must be a rate in \[0, 1\)"):
        lstm_jax.stack(LSTM, 2, dropout=dropout)


def test_stack_unknown_merge():
    with pytest.raises(ValueError, match=r"stack: merge must be one of"):
        lstm_jax.stack(LSTM, 2, bidirectional=True, merge="max")


def test_stack_cell_not_a_cell():
    with pytest.raises(TypeError, match=r"stack: cell\[1\] must be an lstm_jax cell"):
        lstm_jax.stack([LSTM, "gru"], 2)


def test_stack_init_bad_input_size():
    with pytest.raises(ValueError, match=r"input_size must be a positive int"):
        lstm_jax.stack(LSTM, 2).init(jax.random.key(0), 0)


def test_stack_apply_wrong_number_of_params():
    net = lstm_jax.stack(LSTM, 2)
    params = net.init(jax.random.key(0), IN)
    with pytest.raises(TypeError, match=r"stack.apply: params must be a sequence of 2 per-layer"):
        net.apply(params[:1], XS)


def test_stack_apply_wrong_number_of_initial_carries():
    net = lstm_jax.stack(LSTM, 2)
    params = net.init(jax.random.key(0), IN)
    with pytest.raises(TypeError, match=r"stack.apply: initial_carry must be a sequence of 2"):
        net.apply(params, XS, initial_carry=net.initial_carry((B,))[:1])


def test_stack_apply_wrong_feature_size_names_xs():
    net = lstm_jax.stack(LSTM, 2)
    params = net.init(jax.random.key(0), IN)
    with pytest.raises(
        ValueError, match=r"xs must have shape \[\*batch, time, input\] with input=3"
    ):
        net.apply(params, jnp.zeros((B, T, IN + 1)))


def test_stack_apply_float_seq_lengths():
    net = lstm_jax.stack(LSTM, 2, bidirectional=True)
    params = net.init(jax.random.key(0), IN)
    with pytest.raises(TypeError, match=r"seq_lengths must have an integer dtype"):
        net.apply(params, XS, seq_lengths=np.array([3.0, 1.0]))


def test_stack_apply_bidirectional_layer_needs_a_pair():
    net = lstm_jax.stack(LSTM, 1, bidirectional=True)
    with pytest.raises(TypeError, match=r"params must be a pair \(forward, backward\)"):
        net.apply((LSTM_PARAMS,), XS)
