"""experiments.common: the command line derived from each script's Config, the one-line
errors and the divergence flag (no training here; the end-to-end runs are in
test_adding_problem.py, the run directory's tests in tests/training/test_run_directory.py)."""

import dataclasses
import json

import jax
import pytest

from experiments import adding_problem, common
from lstm_jax import training

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


def test_the_parser_has_one_option_per_config_field_with_its_default():
    parser = common.parser_for(adding_problem.Config, "adding")
    defaults = vars(parser.parse_args([]))
    for name in (
        "distributed",
        "coordinator",
        "num_processes",
        "process_id",
        "distributed_timeout",
    ):
        defaults.pop(name)
    assert defaults == dataclasses.asdict(adding_problem.Config())
    assert adding_problem.parse_args([]) == adding_problem.Config()


def test_a_new_default_in_a_script_keeps_the_common_help_and_type(capsys):
    parser = common.parser_for(adding_problem.Config, "adding")
    text = parser.format_help()
    assert "peak learning rate (Adam) (default: 0.002)" in text
    assert "sequence length T" in text
    with pytest.raises(SystemExit):
        parser.parse_args(["--lr", "0"])
    assert "argument --lr: must be a finite number > 0" in capsys.readouterr().err


def test_flags_follow_their_defaults():
    @dataclasses.dataclass(frozen=True)
    class Config(common.RunConfig):
        extra: bool = common.option(True, "on by default")

    args = common.parser_for(Config, "x").parse_args(["--no-extra", "--overwrite", "--progress"])
    assert (args.extra, args.overwrite, args.progress, args.tensorboard) == (
        False,
        True,
        True,
        False,
    )


def test_a_field_without_an_option_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Config(common.RunConfig):
        bare: int = 3

    with pytest.raises(TypeError, match=r"Config\.bare: declare the field with common\.option"):
        common.parser_for(Config, "x")


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
        raise training.RunLockedError("runs/x is being written by process 1")

    with pytest.raises(SystemExit) as e:
        common.cli(main, [])
    assert str(e.value.code).endswith(": error: runs/x is being written by process 1")
