"""Inputs that used to give silently wrong numbers: each case is either exact or rejected with a
message that names the argument."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import lstm_jax

INTEGER_DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32"]


@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
def test_seq_lengths_of_any_integer_dtype_match_the_reference(dtype):
    """At time > 127 an int8 time index wraps; the mask must not."""
    cell = lstm_jax.lstm(2)
    params = ref.random_params(cell, 1)
    time = 300
    xs = ref.random_array((2, time, 1), scale=0.3)
    lengths = np.array([10, time if np.iinfo(dtype).max >= time else np.iinfo(dtype).max])
    carry, ys = lstm_jax.unroll(cell, params, xs, seq_lengths=jnp.asarray(lengths, dtype))
    ref_carry, ref_ys, _ = ref.ref_unroll("lstm", params, xs, seq_lengths=lengths)
    ref.assert_close(ys, ref_ys, atol=1e-5)
    ref.assert_carry_close(carry, ref_carry, atol=1e-5)
    assert not np.any(np.asarray(ys)[0, 10:])


def test_time_mask_clips_lengths_in_their_own_dtype():
    from lstm_jax._scan import time_mask

    lengths = jnp.array([-3, 0, 5, 127], jnp.int8)
    mask = np.asarray(time_mask(lengths, 200))
    np.testing.assert_array_equal(mask.sum(0), [0, 0, 5, 127])
    big = jnp.array([4_000_000_000], jnp.uint32)
    assert int(np.asarray(time_mask(big, 7)).sum()) == 7


def test_bool_seq_lengths_are_rejected():
    cell = lstm_jax.lstm(2)
    params = cell.init(jax.random.key(0), 1)
    with pytest.raises(
        TypeError, match=r"unroll: seq_lengths must have an integer dtype, got bool"
    ):
        lstm_jax.unroll(cell, params, jnp.zeros((2, 3, 1)), seq_lengths=jnp.array([True, False]))


@pytest.mark.parametrize(
    "merge",
    [
        lambda f, b: (f + b).sum(-1),  # [time, batch]: one rank short
        lambda f, b: (f, b),  # a tuple
        lambda f, b: 1.0,  # a float
        lambda f, b: jnp.concatenate([f, b], axis=0),  # time doubled
    ],
    ids=["rank", "tuple", "float", "time"],
)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_callable_merge_with_a_wrong_result_is_rejected(merge, with_lengths):
    cell = lstm_jax.lstm(2)
    p = cell.init(jax.random.key(0), 1)
    lengths = jnp.array([3, 1]) if with_lengths else None
    with pytest.raises((TypeError, ValueError), match=r"bidirectional: merge must return"):
        lstm_jax.bidirectional(cell, (p, p), jnp.ones((2, 3, 1)), merge=merge, seq_lengths=lengths)


@pytest.mark.parametrize(
    ("config", "name"),
    [
        ({"carry_dtype": jnp.int32}, "carry_dtype"),
        ({"dtype": "float77"}, "dtype"),
        ({"dtype": jnp.int32}, "dtype"),
        ({"param_dtype": jnp.int32}, "param_dtype"),
        ({"param_dtype": None}, "param_dtype"),
        ({"forget_bias": "a"}, "forget_bias"),
        ({"use_bias": "no"}, "use_bias"),
    ],
    ids=str,
)
def test_cell_options_of_the_wrong_kind_are_rejected(config, name):
    with pytest.raises(TypeError, match=rf"lstm: {name} must be"):
        lstm_jax.lstm(2, **config)


def test_gru_reset_after_must_be_a_bool():
    with pytest.raises(TypeError, match=r"gru: reset_after must be a bool"):
        lstm_jax.gru(2, reset_after="no")


@pytest.mark.parametrize("flag", ["reverse", "time_major"])
def test_unroll_flags_must_be_bools(flag):
    cell = lstm_jax.lstm(2)
    p = cell.init(jax.random.key(0), 1)
    with pytest.raises(TypeError, match=rf"unroll: {flag} must be a bool"):
        lstm_jax.unroll(cell, p, jnp.ones((2, 3, 1)), **{flag: "false"})


def test_bidirectional_and_stack_flags_must_be_bools():
    cell = lstm_jax.lstm(2)
    p = cell.init(jax.random.key(0), 1)
    with pytest.raises(TypeError, match=r"bidirectional: time_major must be a bool"):
        lstm_jax.bidirectional(cell, (p, p), jnp.ones((2, 3, 1)), time_major="no")
    with pytest.raises(TypeError, match=r"stack: bidirectional must be a bool"):
        lstm_jax.stack(cell, 2, bidirectional="yes")
    with pytest.raises(TypeError, match=r"stack: residual must be a bool"):
        lstm_jax.stack(cell, 2, residual=1)


def test_initial_carry_of_another_dtype_is_rejected():
    cell = lstm_jax.lstm(2)
    p = cell.init(jax.random.key(0), 1)
    carry = jax.tree_util.tree_map(lambda a: a.astype(jnp.bfloat16), cell.initial_carry(2))
    with pytest.raises(TypeError, match=r"unroll: initial_carry must have the cell's carry dtype"):
        lstm_jax.unroll(cell, p, jnp.ones((2, 3, 1)), initial_carry=carry)


@pytest.mark.parametrize(
    "key",
    [0, jnp.zeros((3,), jnp.uint32), jax.random.split(jax.random.key(0), 2), jnp.zeros(2)],
    ids=["int", "uint32[3]", "array of keys", "float[2]"],
)
def test_stack_dropout_key_must_be_one_key(key):
    net = lstm_jax.stack(lstm_jax.lstm(2), 2, dropout=0.5)
    params = net.init(jax.random.key(0), 1)
    with pytest.raises((TypeError, ValueError), match=r"stack.apply: dropout_key must be"):
        net.apply(params, jnp.ones((2, 3, 1)), dropout_key=key)


def test_stack_accepts_a_raw_key():
    net = lstm_jax.stack(lstm_jax.lstm(2), 2, dropout=0.5)
    params = net.init(jax.random.key(0), 1)
    _, ys = net.apply(params, jnp.ones((2, 3, 1)), dropout_key=jax.random.PRNGKey(0))
    assert ys.shape == (2, 3, 2)
