"""training.run_directory: the run lock, the resume-configuration check, clear_run and the
history read back from log.jsonl."""

import dataclasses
import json
import os

import jax.numpy as jnp
import optax
import pytest

from lstm_jax import training


@dataclasses.dataclass(frozen=True)
class Config:
    cell: str = "lstm"
    seed: int = 0
    hidden: int = 64
    lr: float = 2e-3
    steps: int = 20
    schedule: str = "cosine"
    log_every: int = 5
    sizes: tuple[int, ...] = (1, 2)


CONFIG = Config()
LOGGING = ("log_every",)


def _saved(**changes):
    return json.loads(json.dumps(dataclasses.asdict(dataclasses.replace(CONFIG, **changes))))


def test_the_same_configuration_has_no_differences():
    # Tuples come back from JSON as lists, and still compare equal.
    assert training.config_differences(_saved(), CONFIG, step=20) == []
    assert training.config_differences(_saved(), dataclasses.asdict(CONFIG), step=20) == []


def test_every_differing_option_is_listed_as_a_flag():
    saved = _saved(seed=1, cell="gru", hidden=32, lr=1e-3)
    differ = training.config_differences(saved, CONFIG, step=10)
    assert differ == [
        "--cell 'gru' -> 'lstm'",
        "--hidden 32 -> 64",
        "--lr 0.001 -> 0.002",
        "--seed 1 -> 0",
    ]


def test_fields_in_may_change_may_differ():
    saved = _saved(log_every=7)
    assert training.config_differences(saved, CONFIG, step=10) == ["--log-every 7 -> 5"]
    assert training.config_differences(saved, CONFIG, step=10, may_change=LOGGING) == []
    assert training.config_differences({**_saved(), "prompt": "x"}, CONFIG, step=10) == [
        "--prompt 'x' -> None"
    ]


def test_steps_may_grow_only_with_a_constant_schedule_and_never_below_the_checkpoint():
    constant = dataclasses.replace(CONFIG, schedule="constant")
    saved = _saved(schedule="constant")
    assert (
        training.config_differences(saved, dataclasses.replace(constant, steps=40), step=20) == []
    )
    (below,) = training.config_differences(saved, dataclasses.replace(constant, steps=10), step=20)
    assert below == "--steps 20 -> 10 (below the checkpoint's step 20)"
    (decays,) = training.config_differences(
        _saved(), dataclasses.replace(CONFIG, steps=40), step=20
    )
    assert decays.startswith("--steps 20 -> 40 (the cosine schedule decays over --steps")


def test_config_must_be_a_dataclass_or_a_dict():
    with pytest.raises(TypeError, match="config must be a dataclass instance or a dict"):
        training.config_differences(_saved(), [1, 2], step=1)


def _state():
    params = {"w": jnp.ones((2,), jnp.float32)}
    return training.create_train_state(params, optax.sgd(0.1), 0)


def _checkpoint(directory, config):
    metadata = None if config is None else {"config": dataclasses.asdict(config)}
    with training.Checkpointer(directory / "checkpoints", metadata=metadata) as ckpt:
        ckpt.save(_state())


def test_check_resume_passes_without_checkpoints_and_for_the_same_configuration(tmp_path):
    with training.Checkpointer(tmp_path / "checkpoints") as ckpt:
        training.check_resume(ckpt, dataclasses.replace(CONFIG, seed=5))
    _checkpoint(tmp_path, CONFIG)
    with training.Checkpointer(tmp_path / "checkpoints") as ckpt:
        training.check_resume(ckpt, CONFIG)
        training.check_resume(ckpt, dataclasses.replace(CONFIG, log_every=1), may_change=LOGGING)


def test_check_resume_refuses_another_configuration_in_one_line(tmp_path):
    _checkpoint(tmp_path, CONFIG)
    with training.Checkpointer(tmp_path / "checkpoints") as ckpt:
        with pytest.raises(training.ConfigMismatchError) as e:
            training.check_resume(ckpt, dataclasses.replace(CONFIG, seed=1, hidden=32))
    message = str(e.value)
    assert message.startswith(f"{tmp_path} holds a run with another configuration")
    assert "(checkpoint of step 0)" in message
    assert "--hidden 64 -> 32, --seed 0 -> 1" in message
    assert "--overwrite" in message and "new --out" in message and "\n" not in message
    assert isinstance(e.value, training.RunError) and isinstance(e.value, ValueError)


def test_checkpoints_without_a_configuration_are_refused(tmp_path):
    _checkpoint(tmp_path, None)
    with training.Checkpointer(tmp_path / "checkpoints") as ckpt:
        with pytest.raises(training.ConfigMismatchError, match="do not record their configuration"):
            training.check_resume(ckpt, CONFIG)


def test_a_held_run_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    with training.RunLock(tmp_path):
        with open(tmp_path / "run.lock") as f:
            assert f.read().startswith(f"{os.getpid()} on ")
        with pytest.raises(training.RunLockedError, match=rf"by process {os.getpid()} on "):
            with training.RunLock(tmp_path):
                pass
    assert not os.path.exists(tmp_path / "run.lock")
    with training.RunLock(tmp_path):  # released: free again
        pass


def test_the_run_lock_creates_its_directory(tmp_path):
    with training.RunLock(tmp_path / "new" / "run"):
        assert os.path.exists(tmp_path / "new" / "run" / "run.lock")


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = 4_999_999  # above Linux's largest pid
    (tmp_path / "run.lock").write_text(f"{dead} on elsewhere\n")
    with training.RunLock(tmp_path):
        with open(tmp_path / "run.lock") as f:
            assert f.read().startswith(f"{os.getpid()} on ")
    err = capsys.readouterr().err
    assert f"taking over the stale lock {tmp_path / 'run.lock'} of process {dead}" in err


def test_clear_run_deletes_what_a_run_wrote_and_nothing_else(tmp_path):
    (tmp_path / "checkpoints" / "8").mkdir(parents=True)
    (tmp_path / "tensorboard").mkdir()
    for name in ("log.jsonl", "metrics.json", "curves.png", "notes.txt"):
        (tmp_path / name).write_text("x")
    training.clear_run(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["curves.png", "notes.txt"]
    training.clear_run(tmp_path)  # nothing left to delete: no error
    training.clear_run(tmp_path, names=("notes.txt",))
    assert os.listdir(tmp_path) == ["curves.png"]


def test_read_history_drops_the_time_and_reads_non_finite_values_back(tmp_path):
    with training.MetricLogger(tmp_path) as logger:
        logger.log(5, {"loss": float("nan"), "initial_loss": 2.0})
        logger.log(5, {"acc": float("inf")}, "eval")
    history = training.read_history(tmp_path)
    assert [r["split"] for r in history] == ["train", "eval"]
    assert all("time" not in r for r in history)
    assert history[0]["step"] == 5 and history[0]["initial_loss"] == 2.0
    assert history[0]["loss"] != history[0]["loss"] and history[1]["acc"] == float("inf")
    assert training.read_history(tmp_path / "absent") == []
