"""experiments.common: the flags every experiment takes, resuming checks, the run lock and the
divergence flag (no training here; the end-to-end runs are in test_adding_problem.py)."""

import dataclasses
import json
import os

import jax
import pytest

from experiments import adding_problem, common

CONFIG = adding_problem.Config(steps=20, out="unused")


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--eval-every", "-1"),
        ("--checkpoint-every", "-1"),
        ("--keep", "0"),
        ("--clip-norm", "0"),
        ("--clip-norm", "-1"),
        ("--devices", "0"),
        ("--lr", "inf"),
        ("--lr", "nan"),
        ("--lr", "0"),
        ("--lr", "-1e-3"),
        ("--steps", "-1"),
        ("--log-every", "0"),
    ],
)
def test_bad_flags_are_rejected_by_the_parser_naming_the_flag(capsys, tmp_path, flag, value):
    with pytest.raises(SystemExit) as e:
        adding_problem.parse_args([flag, value, "--out", str(tmp_path)])
    assert e.value.code == 2
    assert f"argument {flag}: " in capsys.readouterr().err


def test_out_naming_an_existing_file_is_rejected_by_the_parser(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit):
        adding_problem.parse_args(["--out", str(tmp_path / "file")])
    err = capsys.readouterr().err
    assert "argument --out: " in err and "is an existing file, not a directory" in err


def test_more_devices_than_exist_are_rejected_naming_the_flag(tmp_path):
    n = jax.device_count()
    with pytest.raises(ValueError, match=rf"--devices must be between 1 and the {n} devices"):
        adding_problem.parse_args(["--devices", str(n + 1), "--out", str(tmp_path)])


def _saved(**changes):
    return json.loads(json.dumps(dataclasses.asdict(dataclasses.replace(CONFIG, **changes))))


def test_resuming_with_the_same_configuration_passes():
    common.check_resume(CONFIG, _saved(), 20)


def test_resuming_with_options_that_change_the_run_lists_them_all():
    saved = _saved(seed=1, cell="gru", hidden=32, lr=1e-3)
    with pytest.raises(common.ConfigMismatchError) as e:
        common.check_resume(CONFIG, saved, 10)
    message = str(e.value)
    for part in ("--seed 1 -> 0", "--cell 'gru' -> 'lstm'", "--hidden 32 -> 64", "--lr 0.001"):
        assert part in message
    assert "--overwrite" in message and "new --out" in message and "\n" not in message


def test_options_that_do_not_change_the_run_may_differ():
    saved = _saved(
        progress=True, tensorboard=True, log_every=7, eval_every=3, checkpoint_every=5, keep=9
    )
    common.check_resume(dataclasses.replace(CONFIG, overwrite=True), saved, 10)
    common.check_resume(CONFIG, {**_saved(), "out": "moved"}, 10)
    with pytest.raises(common.ConfigMismatchError, match="--prompt"):
        common.check_resume(CONFIG, {**_saved(), "prompt": "x"}, 10)
    common.check_resume(CONFIG, {**_saved(), "prompt": "x"}, 10, may_change=("prompt",))


def test_steps_may_grow_only_with_a_constant_learning_rate():
    constant = dataclasses.replace(CONFIG, schedule="constant")
    common.check_resume(dataclasses.replace(constant, steps=40), _saved(schedule="constant"), 20)
    with pytest.raises(common.ConfigMismatchError, match=r"below the checkpoint's step 20"):
        common.check_resume(
            dataclasses.replace(constant, steps=10), _saved(schedule="constant"), 20
        )
    with pytest.raises(common.ConfigMismatchError, match=r"--steps 20 -> 40 \(the cosine"):
        common.check_resume(dataclasses.replace(CONFIG, steps=40), _saved(), 20)


def test_checkpoints_without_a_configuration_are_refused():
    with pytest.raises(common.ConfigMismatchError, match="do not record their configuration"):
        common.check_resume(CONFIG, None, 5)


def test_a_held_run_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    with common.RunLock(tmp_path):
        with open(tmp_path / common.LOCK_FILE) as f:
            assert f.read().startswith(f"{os.getpid()} on ")
        with pytest.raises(common.RunLockedError, match=rf"by process {os.getpid()} on "):
            with common.RunLock(tmp_path):
                pass
    assert not os.path.exists(tmp_path / common.LOCK_FILE)
    with common.RunLock(tmp_path):  # released: free again
        pass


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = 4_999_999  # above Linux's largest pid
    (tmp_path / common.LOCK_FILE).write_text(f"{dead} on elsewhere\n")
    with common.RunLock(tmp_path):
        with open(tmp_path / common.LOCK_FILE) as f:
            assert f.read().startswith(f"{os.getpid()} on ")
    err = capsys.readouterr().err
    assert f"taking over the stale lock {tmp_path / common.LOCK_FILE} of process {dead}" in err


def test_metrics_json_flags_a_run_whose_loss_ends_far_above_where_it_started(tmp_path, capsys):
    config = dataclasses.replace(CONFIG, out=str(tmp_path))
    first = {"step": 5, "split": "train", "loss": 4e20, "initial_loss": 0.2}
    fine = [
        first,
        {"step": 10, "split": "eval", "x": 1.0},
        {"step": 10, "split": "train", "loss": 1.0},
    ]
    common.write_metrics(config, {}, history=fine)
    with open(tmp_path / "metrics.json") as f:
        assert json.load(f)["diverged"] is False
    assert capsys.readouterr().err == ""
    # The first window's mean is already huge: the reference is the loss at step 0.
    diverged = [first, {"step": 10, "split": "train", "loss": 3e30}]
    common.write_metrics(config, {}, history=diverged)
    with open(tmp_path / "metrics.json") as f:
        saved = json.load(f)
    assert saved["diverged"] is True and saved["loss_ratio"] == pytest.approx(1.5e31)
    err = capsys.readouterr().err
    assert err.startswith("warning: the run diverged: the train loss ended at 3e+30")
    assert err.count("\n") == 1


def test_the_command_line_prints_a_run_error_as_one_line():
    def main(argv):
        raise common.RunLockedError("runs/x is being written by process 1")

    with pytest.raises(SystemExit) as e:
        common.cli(main, [])
    assert str(e.value.code).endswith(": error: runs/x is being written by process 1")
