import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstm_jax
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


# ---- integrity: checksums, corrupted checkpoints, targets that do not fit ----------------------


def _state(step=0, size=64, seed=0):
    """A state with one [size, size] random matrix: its bytes fill the biggest data file."""
    params = {"w": jax.random.normal(jax.random.key(seed), (size, size), jnp.float32)}
    state = training.create_train_state(params, training.make_optimizer(1e-2), seed)
    return state._replace(step=jnp.asarray(step, jnp.int32))


def _data_files(directory, step):
    root = os.path.join(directory, str(step), "state")
    files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if "/d" in d[len(root) :]]
    return sorted(files, key=os.path.getsize)


def _flip_bytes(path):
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        middle = len(data) // 2
        data[middle : middle + 4] = bytes(b ^ 0x5A for b in data[middle : middle + 4])
        f.seek(0)
        f.write(data)


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


@pytest.mark.parametrize("file_list", [True, False], ids=["file list", "no file list"])
def test_flipped_bytes_in_an_array_are_an_error_not_wrong_numbers(tmp_path, file_list):
    state = _state(step=3)
    with training.Checkpointer(tmp_path, save_every=0) as ckpt:
        ckpt.save(state)
    if not file_list:  # as after a kill during an async save: the arrays' CRC-32s catch it
        os.remove(os.path.join(tmp_path, "3", "lstm_jax_files.json"))
    _flip_bytes(_data_files(tmp_path, 3)[-1])
    want = r"does not match its CRC-32" if file_list else r"state.params\['w'\] does not match"
    with training.Checkpointer(tmp_path, save_every=0) as ckpt:
        with pytest.raises(training.CorruptCheckpointError, match=r"step 3 .* is corrupted"):
            ckpt.restore(_state(), step=3)
        with pytest.raises(training.CorruptCheckpointError, match=want):
            ckpt.restore(_state(), step=3)


@pytest.mark.parametrize("damage", ["data file truncated", "_METADATA truncated", "bytes flipped"])
def test_a_corrupted_latest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, damage):
    good, bad = _state(step=1, seed=1), _state(step=2, seed=2)
    with training.Checkpointer(tmp_path, save_every=0) as ckpt:
        ckpt.save(good)
        ckpt.save(bad)
    if damage == "data file truncated":
        _truncate(_data_files(tmp_path, 2)[-1])
    elif damage == "_METADATA truncated":
        _truncate(os.path.join(tmp_path, "2", "state", "_METADATA"))
    else:
        _flip_bytes(_data_files(tmp_path, 2)[-1])
    with training.Checkpointer(tmp_path, save_every=0) as ckpt:
        with pytest.warns(training.CorruptCheckpointWarning) as record:
            restored = ckpt.restore(_state())
    assert len(record) == 1
    message = str(record[0].message)
    assert "\n" not in message and os.path.join(str(tmp_path), "2") in message
    assert "trying step 1" in message
    assert_bitwise_equal(restored, good)


def test_no_intact_checkpoint_is_one_clear_error(tmp_path):
    with training.Checkpointer(tmp_path, save_every=0) as ckpt:
        ckpt.save(_state(step=1))
    _truncate(_data_files(tmp_path, 1)[-1])
    with training.Checkpointer(tmp_path, save_every=0) as ckpt:
        with pytest.warns(training.CorruptCheckpointWarning, match="no older checkpoint"):
            with pytest.raises(training.CorruptCheckpointError) as e:
                ckpt.restore(_state())
    assert str(e.value).startswith("Checkpointer.restore: no intact checkpoint in")
    assert "\n" not in str(e.value) and "step 1:" in str(e.value)


def test_saving_again_replaces_a_checkpoint_found_corrupted(tmp_path):
    with training.Checkpointer(tmp_path, save_every=0) as ckpt:
        ckpt.save(_state(step=1))
        ckpt.save(_state(step=2))
    _flip_bytes(_data_files(tmp_path, 2)[-1])
    with training.Checkpointer(tmp_path, save_every=0) as ckpt:
        with pytest.warns(training.CorruptCheckpointWarning):
            ckpt.restore(_state())
        ckpt.save(_state(step=2, seed=5))
        assert_bitwise_equal(ckpt.restore(_state(), step=2), _state(step=2, seed=5))


def test_a_target_of_another_configuration_names_the_arrays_that_differ(tiny, tmp_path):
    state, _ = tiny.run(0)
    with training.Checkpointer(tmp_path, save_every=0) as ckpt:
        ckpt.save(state)
        wider = dataclasses.replace(tiny, cell=lstm_jax.lstm(8))
        opt = training.make_optimizer(1e-2)
        params = {"rnn": wider.cell.init(jax.random.key(0), 2), "out": jnp.zeros((8, 1))}
        target = training.create_train_state(params, opt, 0)
        with pytest.raises(ValueError, match=r"does not fit the checkpoint of step 0") as e:
            ckpt.restore(target)
        assert "state.params['rnn'].w_hh is float32[4, 16] in the checkpoint, float32[8, 32]" in (
            str(e.value)
        )
        gru = {"rnn": lstm_jax.gru(4).init(jax.random.key(0), 2), "out": jnp.zeros((4, 1))}
        with pytest.raises(ValueError, match=r"state.params\['rnn'\].* in the target, not in"):
            ckpt.restore(training.create_train_state(gru, opt, 0))


def test_metadata_is_saved_with_every_step_and_must_be_json(tmp_path):
    with pytest.raises(TypeError, match="Checkpointer: metadata must be JSON-serialisable"):
        training.Checkpointer(tmp_path / "a", metadata={"f": object()})
    with training.Checkpointer(tmp_path / "b", save_every=0, metadata={"config": {"seed": 3}}) as c:
        with pytest.raises(TypeError, match=r"Checkpointer.save: metadata must be JSON"):
            c.save(_state(step=1), metadata={"x": {1, 2}})
        assert c.all_steps() == [] and os.listdir(tmp_path / "b") == []
        c.save(_state(step=2), metadata={"extra": [1, 2]})
        assert c.metadata(2) == {"config": {"seed": 3}, "extra": [1, 2]}
        assert c.metadata() == c.metadata(2) and c.metadata(7) is None


def test_a_non_finite_state_is_never_saved(tmp_path):
    state = _state(step=1)
    state = state._replace(params={"w": state.params["w"].at[0, 0].set(jnp.inf)})
    with training.Checkpointer(tmp_path, save_every=0) as ckpt:
        with pytest.raises(ValueError, match=r"state.params\['w'\] holds a NaN or Inf at step 1"):
            ckpt.save(state)
        assert ckpt.all_steps() == []


def test_async_saves_get_their_file_list_once_on_disk(tmp_path):
    with training.Checkpointer(tmp_path, save_every=0, async_save=True, keep=2) as ckpt:
        for step in (1, 2, 3):
            ckpt.save(_state(step=step, seed=step))
    assert sorted(os.listdir(tmp_path)) == ["2", "3"]
    for step in (2, 3):
        assert os.path.exists(os.path.join(tmp_path, str(step), "lstm_jax_files.json"))
    _truncate(_data_files(tmp_path, 3)[-1])
    with training.Checkpointer(tmp_path, save_every=0) as ckpt:
        with pytest.warns(training.CorruptCheckpointWarning, match=r"bytes, \d+ were written"):
            assert_bitwise_equal(ckpt.restore(_state()), _state(step=2, seed=2))


def test_a_checkpoint_in_the_older_layout_is_named_as_such(tmp_path):
    import orbax.checkpoint as ocp

    state = _state(step=4)
    with ocp.CheckpointManager(tmp_path) as manager:
        manager.save(4, args=ocp.args.StandardSave(state))
    with training.Checkpointer(tmp_path, save_every=0) as ckpt:
        with pytest.raises(training.CorruptCheckpointError, match=r"written in an older layout"):
            ckpt.restore(_state(), step=4)
