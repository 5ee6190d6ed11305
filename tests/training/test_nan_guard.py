import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax import training


def test_stops_naming_step_and_metric_and_keeps_the_last_good_checkpoint(tiny, tmp_path):
    bad_step = 7

    def batch_fn(step):
        batch = tiny.batch(step)
        if step == bad_step:
            batch["y"] = batch["y"].at[0, 0].set(jnp.nan)
        return batch

    opt = training.make_optimizer(1e-2)
    state = training.create_train_state(tiny.init(), opt, 0)
    step = training.make_train_step(tiny.loss, opt)
    with training.Checkpointer(tmp_path, save_every=5, keep=3) as ckpt:
        with pytest.raises(training.NonFiniteError, match="non-finite loss = nan at step 7") as e:
            training.train(state, step, batch_fn, num_steps=20, checkpointer=ckpt, progress=False)
        assert e.value.step == bad_step and e.value.metric == "loss"
        assert e.value.checkpoint_step == 5 and "last good checkpoint is step 5" in str(e.value)
        assert ckpt.all_steps() == [5]
        restored = ckpt.restore(state)
    assert int(restored.step) == 5
    for leaf in [restored.params["out"], *restored.params["rnn"]]:
        assert np.all(np.isfinite(np.asarray(leaf)))


def test_names_the_gradient_norm_when_only_the_gradient_blows_up(tiny):
    def loss(params, batch, key):
        # sqrt has an infinite derivative at 0: the loss is finite, the gradient is not.
        return jnp.sqrt(jnp.sum(params["out"] * 0.0) ** 2)

    opt = training.make_optimizer(1e-2)
    state = training.create_train_state(tiny.init(), opt, 0)
    step = training.make_train_step(loss, opt)
    with pytest.raises(training.NonFiniteError, match="non-finite grad_norm") as e:
        training.train(state, step, tiny.batch, num_steps=3, progress=False)
    assert e.value.step == 0 and e.value.checkpoint_step is None
