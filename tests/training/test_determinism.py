import jax
import numpy as np

from lstm_jax import training


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_same_seed_gives_identical_runs(tiny):
    a, history_a = tiny.run(5, seed=3, log_every=1)
    b, history_b = tiny.run(5, seed=3, log_every=1)
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert [r["loss"] for r in history_a] == [r["loss"] for r in history_b]


def test_different_seeds_give_different_runs(tiny):
    a, _ = tiny.run(2, seed=0)
    b, _ = tiny.run(2, seed=1)
    assert not np.array_equal(leaves(a.params)[0], leaves(b.params)[0])


def test_dropout_randomness_comes_from_the_state_key():
    import jax.numpy as jnp

    def loss(params, batch, key):
        keep = jax.random.bernoulli(key, 0.5, (4,)).astype(jnp.float32)
        return jnp.sum(params["w"] * keep)

    def run():
        opt = training.make_optimizer(0.1, optimizer="sgd", clip_norm=None)
        state = training.create_train_state({"w": jnp.ones(4)}, opt, 11)
        step = training.make_train_step(loss, opt)
        for _ in range(3):
            state, _ = step(state, None)
        return state

    np.testing.assert_array_equal(run().params["w"], run().params["w"])
