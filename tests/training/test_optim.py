import math

import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax import training


def test_sgd_update_clips_the_global_norm():
    params = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))}
    grads = {"a": jnp.array([3.0, 0.0, 4.0]), "b": jnp.full((2, 2), 6.0)}
    opt = training.make_optimizer(0.5, optimizer="sgd", clip_norm=2.0)
    updates, _ = opt.update(grads, opt.init(params), params)
    norm = math.sqrt(9 + 16 + 4 * 36)  # one norm over the whole pytree
    np.testing.assert_allclose(
        updates["a"], -0.5 * np.array([3.0, 0.0, 4.0]) * 2.0 / norm, rtol=1e-6
    )
    np.testing.assert_allclose(updates["b"], -0.5 * np.full((2, 2), 6.0) * 2.0 / norm, rtol=1e-6)


def test_small_gradients_are_not_clipped():
    params = {"a": jnp.zeros(2)}
    grads = {"a": jnp.array([0.3, 0.4])}
    opt = training.make_optimizer(1.0, optimizer="sgd", clip_norm=1.0)
    updates, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(updates["a"], [-0.3, -0.4], rtol=1e-6)


def test_schedules_follow_their_formulas():
    lr, total, warm = 0.1, 100, 10
    cos = training.learning_rate_schedule(lr, schedule="cosine", total_steps=total)
    for s in (0, 25, 50, 100):
        assert float(cos(s)) == pytest.approx(
            lr * 0.5 * (1 + math.cos(math.pi * s / total)), rel=1e-5
        )
    wc = training.learning_rate_schedule(
        lr, schedule="warmup_cosine", total_steps=total, warmup_steps=warm
    )
    assert float(wc(5)) == pytest.approx(lr * 5 / warm, rel=1e-5)
    assert float(wc(warm)) == pytest.approx(lr, rel=1e-5)
    lin = training.learning_rate_schedule(
        lr, schedule="linear", total_steps=total, final_fraction=0.1
    )
    assert float(lin(50)) == pytest.approx(lr * (1 - 0.9 * 0.5), rel=1e-5)
    assert float(training.learning_rate_schedule(lr)(1234)) == pytest.approx(lr)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        training.make_optimizer(1e-3, optimizer="lion9")
    with pytest.raises(ValueError, match="clip_norm must be > 0"):
        training.make_optimizer(1e-3, clip_norm=0.0)
    with pytest.raises(ValueError, match="weight_decay is only supported"):
        training.make_optimizer(1e-3, weight_decay=0.1)
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        training.make_optimizer(-1.0)
    with pytest.raises(ValueError, match="total_steps must be a positive int"):
        training.learning_rate_schedule(1e-3, schedule="cosine")
    with pytest.raises(ValueError, match="warmup_steps must be in"):
        training.learning_rate_schedule(
            1e-3, schedule="warmup_cosine", total_steps=5, warmup_steps=5
        )
    with pytest.raises(ValueError, match="schedule must be one of"):
        training.learning_rate_schedule(1e-3, schedule="step")
