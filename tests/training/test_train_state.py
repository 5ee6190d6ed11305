import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lstm_jax import training


def test_state_starts_at_step_zero_with_optimizer_state():
    params = {"w": jnp.ones((3, 2))}
    opt = optax.sgd(0.1, momentum=0.9)
    state = training.create_train_state(params, opt, 7)
    assert int(state.step) == 0 and state.step.dtype == jnp.int32
    assert state.params is params
    np.testing.assert_array_equal(state.opt_state[0].trace["w"], np.zeros((3, 2)))


@pytest.mark.parametrize("key", [jax.random.PRNGKey(3), jax.random.key(3), 3])
def test_keys_are_stored_as_raw_uint32_data(key):
    state = training.create_train_state({"w": jnp.ones(2)}, optax.sgd(0.1), key)
    assert state.key.dtype == jnp.uint32 and state.key.shape == (2,)
    np.testing.assert_array_equal(state.key, jax.random.PRNGKey(3))


def test_state_is_a_pytree_that_jits():
    state = training.create_train_state({"w": jnp.ones(2)}, optax.adam(0.1), 0)
    out = jax.jit(lambda s: s._replace(step=s.step + 1))(state)
    assert int(out.step) == 1


def test_rejects_bad_arguments():
    with pytest.raises(TypeError, match=r"optimizer must be an optax\.GradientTransformation"):
        training.create_train_state({"w": jnp.ones(2)}, "adam", 0)
    with pytest.raises(TypeError, match="params must hold floating arrays"):
        training.create_train_state({"w": jnp.ones(2, jnp.int32)}, optax.sgd(0.1), 0)
    with pytest.raises(ValueError, match="params must contain at least one array"):
        training.create_train_state({}, optax.sgd(0.1), 0)
    with pytest.raises(ValueError, match="key must be a single PRNG key"):
        training.create_train_state({"w": jnp.ones(2)}, optax.sgd(0.1), jnp.zeros(3, jnp.uint32))
    with pytest.raises(TypeError, match="key must be a PRNG key"):
        training.create_train_state({"w": jnp.ones(2)}, optax.sgd(0.1), "seed")
