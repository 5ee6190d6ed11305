import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax import training


def linear_loss(params, batch, key):
    del key
    err = batch["x"] @ params["w"] - batch["y"]
    return jnp.mean(err**2), {"max_err": jnp.max(jnp.abs(err))}


def make_batch():
    rng = np.random.default_rng(0)
    return {
        "x": jnp.asarray(rng.normal(size=(6, 3)), jnp.float32),
        "y": jnp.asarray(rng.normal(size=(6, 1)), jnp.float32),
    }


def test_sgd_step_matches_the_closed_form_gradient():
    batch, lr = make_batch(), 0.1
    w0 = np.random.default_rng(1).normal(size=(3, 1)).astype(np.float32)
    opt = training.make_optimizer(lr, optimizer="sgd", clip_norm=None)
    state = training.create_train_state({"w": jnp.asarray(w0)}, opt, 0)
    new, metrics = training.make_train_step(linear_loss, opt)(state, batch)

    x, y = np.asarray(batch["x"], np.float64), np.asarray(batch["y"], np.float64)
    err = x @ w0 - y
    grad = 2.0 / err.size * x.T @ err
    np.testing.assert_allclose(new.params["w"], w0 - lr * grad, rtol=1e-5, atol=1e-6)
    assert float(metrics["loss"]) == pytest.approx(np.mean(err**2), rel=1e-5)
    assert float(metrics["grad_norm"]) == pytest.approx(np.linalg.norm(grad), rel=1e-5)
    assert float(metrics["max_err"]) == pytest.approx(np.max(np.abs(err)), rel=1e-5)
    assert bool(metrics["finite"]) and int(new.step) == 1


def test_step_advances_the_key_and_hands_a_fresh_one_to_the_loss():
    seen = []

    def loss(params, batch, key):
        seen.append(key)
        return jnp.sum(params["w"] * jax.random.normal(key, (2,)))

    opt = training.make_optimizer(0.1, optimizer="sgd")
    state = training.create_train_state({"w": jnp.ones(2)}, opt, jax.random.PRNGKey(5))
    new, _ = training.make_train_step(loss, opt, jit=False)(state, None)
    next_key, step_key = jax.random.split(jax.random.PRNGKey(5))
    np.testing.assert_array_equal(new.key, next_key)
    np.testing.assert_array_equal(seen[0], step_key)


def test_learning_rate_is_reported_from_the_schedule():
    sched = training.learning_rate_schedule(0.1, schedule="linear", total_steps=10)
    opt = training.make_optimizer(sched, optimizer="sgd")
    state = training.create_train_state({"w": jnp.zeros((3, 1))}, opt, 0)
    step = training.make_train_step(linear_loss, opt, learning_rate=sched)
    state, m0 = step(state, make_batch())
    _, m1 = step(state, make_batch())
    assert float(m0["learning_rate"]) == pytest.approx(0.1)
    assert float(m1["learning_rate"]) == pytest.approx(0.09)


def test_non_finite_step_leaves_the_state_unchanged():
    opt = training.make_optimizer(0.1)
    state = training.create_train_state({"w": jnp.ones((3, 1))}, opt, 0)
    batch = make_batch()
    batch["y"] = batch["y"].at[0, 0].set(jnp.nan)
    new, metrics = training.make_train_step(linear_loss, opt)(state, batch)
    assert not bool(metrics["finite"])
    jax.tree_util.tree_map(np.testing.assert_array_equal, new, state)


def test_eval_step_returns_the_metric_dict():
    step = training.make_eval_step(lambda p, b: {"loss": linear_loss(p, b, None)[0]})
    out = step({"w": jnp.zeros((3, 1))}, make_batch())
    assert float(out["loss"]) == pytest.approx(float(jnp.mean(make_batch()["y"] ** 2)))


@pytest.mark.parametrize(
    ("loss", "error", "match"),
    [
        (lambda p, b, k: jnp.ones(2), TypeError, "floating scalar loss, got float32\\[2\\]"),
        (lambda p, b, k: (jnp.float32(1), 3), TypeError, "scalar loss or \\(loss, dict"),
        (lambda p, b, k: (jnp.sum(p["w"]), {"loss": 1.0}), ValueError, "reserved names"),
        (lambda p, b, k: (jnp.sum(p["w"]), {"m": jnp.ones(2)}), ValueError, "must be a scalar"),
    ],
)
def test_bad_loss_outputs_are_named(loss, error, match):
    opt = training.make_optimizer(0.1)
    state = training.create_train_state({"w": jnp.ones(2)}, opt, 0)
    with pytest.raises(error, match=match):
        training.make_train_step(loss, opt)(state, None)


def test_rejects_bad_arguments():
    opt = training.make_optimizer(0.1)
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        training.make_train_step(3, opt)
    with pytest.raises(TypeError, match=r"optimizer must be an optax\.GradientTransformation"):
        training.make_train_step(linear_loss, "adam")
    with pytest.raises(TypeError, match="state must be a TrainState"):
        training.make_train_step(linear_loss, opt)({"w": jnp.ones(2)}, make_batch())
    with pytest.raises(ValueError, match="must be a scalar"):
        training.make_eval_step(lambda p, b: {"m": jnp.ones(3)})(None, None)
