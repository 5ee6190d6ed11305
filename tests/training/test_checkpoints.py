import jax
import numpy as np
import pytest

from lstm_jax import training


def assert_bitwise_equal(a, b):
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)


def test_saves_every_n_steps_and_at_the_end_keeping_the_last_k(tiny, tmp_path):
    with training.Checkpointer(tmp_path, save_every=3, keep=2) as ckpt:
        tiny.run(8, checkpointer=ckpt)
        assert ckpt.all_steps() == [6, 8]  # 3 was saved, then pruned
        assert ckpt.latest_step() == 8


def test_restore_returns_the_saved_state_bit_for_bit(tiny, tmp_path):
    state, _ = tiny.run(3)
    with training.Checkpointer(tmp_path, save_every=0) as ckpt:
        ckpt.save(state)
        fresh, _ = tiny.run(0)
        restored = ckpt.restore(fresh)
    assert isinstance(restored, training.TrainState)
    assert_bitwise_equal(restored, state)


def test_resuming_equals_training_straight_through(tiny, tmp_path):
    n = 4
    straight, _ = tiny.run(2 * n)
    with training.Checkpointer(tmp_path, save_every=n) as ckpt:
        tiny.run(n, checkpointer=ckpt)
    # A new process would start from the initial state and find the checkpoint on disk.
    with training.Checkpointer(tmp_path, save_every=n) as ckpt:
        resumed, _ = tiny.run(2 * n, checkpointer=ckpt)
    assert_bitwise_equal(resumed, straight)
    assert int(resumed.step) == 2 * n


def test_restore_without_checkpoints_raises(tiny, tmp_path):
    state, _ = tiny.run(0)
    with training.Checkpointer(tmp_path) as ckpt:
        with pytest.raises(FileNotFoundError, match="no checkpoint in"):
            ckpt.restore(state)
        ckpt.save(state)
        with pytest.raises(FileNotFoundError, match="no checkpoint for step 5"):
            ckpt.restore(state, step=5)


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="keep must be an int >= 1"):
        training.Checkpointer(tmp_path, keep=0)
    with pytest.raises(ValueError, match="save_every must be an int >= 0"):
        training.Checkpointer(tmp_path, save_every=-1)
    with training.Checkpointer(tmp_path) as ckpt, pytest.raises(TypeError, match="TrainState"):
        ckpt.save({"params": 1})
