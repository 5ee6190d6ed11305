import jax
import jax.numpy as jnp
import numpy as np
import optax
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


def test_an_update_that_overflows_stops_the_run_and_the_last_checkpoint_is_finite(tiny, tmp_path):
    # SGD without clipping; the learning rate jumps to 1e37 at step 3: the loss and gradient
    # stay finite, the updated parameters overflow float32.
    jump = 3
    lr = lambda step: jnp.where(step < jump, 1e-2, 1e37).astype(jnp.float32)
    opt = training.make_optimizer(lr, optimizer="sgd", clip_norm=None)
    state = training.create_train_state(tiny.init(), opt, 0)
    step = training.make_train_step(lambda p, b, k: 1e3 * tiny.loss(p, b, k)[0], opt)
    with training.Checkpointer(tmp_path, save_every=1, keep=2) as ckpt:
        with pytest.raises(training.NonFiniteError, match="the update of step 3 made the") as e:
            training.train(state, step, tiny.batch, num_steps=6, checkpointer=ckpt, progress=False)
        assert e.value.step == jump and e.value.metric == "update"
        assert e.value.checkpoint_step == jump == ckpt.latest_step()
        restored = ckpt.restore(state)
    assert int(restored.step) == jump
    for leaf in jax.tree_util.tree_leaves((restored.params, restored.opt_state)):
        assert np.all(np.isfinite(np.asarray(leaf)))


def test_an_inf_the_optimiser_state_starts_with_is_no_error(tiny, tmp_path):
    # A "best loss so far" starts at Inf (as in optax.contrib.reduce_on_plateau).
    best_so_far = optax.GradientTransformation(
        lambda params: {"best": jnp.asarray(jnp.inf, jnp.float32)},
        lambda updates, state, params=None: (updates, state),
    )
    opt = optax.chain(training.make_optimizer(1e-2), best_so_far)
    state = training.create_train_state(tiny.init(), opt, 0)
    step = training.make_train_step(tiny.loss, opt)
    with training.Checkpointer(tmp_path, save_every=0) as ckpt:
        state, _ = training.train(
            state, step, tiny.batch, num_steps=2, checkpointer=ckpt, progress=False
        )
        assert ckpt.all_steps() == [2]
