import json
import os
import shutil

import numpy as np
import pytest

from experiments import adding_problem, common
from lstm_jax import training

TINY = [
    "--seq-len",
    "8",
    "--hidden",
    "8",
    "--batch-size",
    "16",
    "--eval-size",
    "32",
    "--lr",
    "1e-2",
    "--log-every",
    "5",
    "--eval-every",
    "10",
    "--no-progress",
]


# Checkpoints every 8 steps (not a multiple of --log-every 5), the last two kept: 16 and 20.
RUN = ["--steps", "20", "--checkpoint-every", "8", "--keep", "2", *TINY]


class Killed(Exception):
    """Stands for the process being killed."""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished run: ``(out, metrics)``; tests work on copies (``copy_of``)."""
    out = str(tmp_path_factory.mktemp("adding") / "run")
    return out, adding_problem.main([*RUN, "--out", out])


def copy_of(finished, tmp_path):
    out = str(tmp_path / "run")
    shutil.copytree(finished[0], out)
    return out


def read(out, name="metrics.json"):
    """metrics.json without the run's own --out, or the records of log.jsonl."""
    with open(os.path.join(out, name)) as f:
        if name.endswith(".jsonl"):
            return [json.loads(line) for line in f]
        saved = json.load(f)
    del saved["config"]["out"]
    return saved


def without_timing(records):
    timing = ("time", "steps_per_s", "examples_per_s")
    return [{k: v for k, v in r.items() if k not in timing} for r in records]


def test_runs_end_to_end_and_the_loss_decreases(finished):
    out, metrics = finished
    for name in ("metrics.json", "log.jsonl", "curves.png"):
        assert os.path.exists(os.path.join(out, name)), name
    saved = read(out)
    assert saved["config"]["seq_len"] == 8 and saved["config"]["cell"] == "lstm"
    assert {"test_mse", "solved_fraction", "baseline_mse"} <= set(saved["metrics"])
    assert metrics["final_train_loss"] < metrics["first_train_loss"]
    assert saved["diverged"] is False
    assert not os.path.exists(os.path.join(out, "run.lock"))


def test_a_finished_run_run_again_only_reevaluates(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    log = read(out, "log.jsonl")
    assert adding_problem.main([*RUN, "--out", out]) == finished[1]
    assert read(out) == read(finished[0])
    again = read(out, "log.jsonl")
    assert [(r["step"], r["split"]) for r in again] == [(r["step"], r["split"]) for r in log]
    assert without_timing(again) == without_timing(log)


def test_a_run_killed_before_metrics_json_writes_it_when_run_again(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    os.remove(os.path.join(out, "metrics.json"))
    adding_problem.main([*RUN, "--out", out])
    assert read(out) == read(finished[0])


@pytest.mark.parametrize(
    "changed, listed",
    [
        (["--seed", "1"], "--seed 0 -> 1"),
        (["--cell", "gru"], "--cell 'lstm' -> 'gru'"),
        (["--hidden", "16"], "--hidden 8 -> 16"),
        (["--steps", "30"], "--steps 20 -> 30 (the cosine schedule"),
    ],
)
def test_resuming_with_another_configuration_is_refused(finished, tmp_path, changed, listed):
    out = copy_of(finished, tmp_path)
    with pytest.raises(training.ConfigMismatchError, match="another configuration") as e:
        adding_problem.main([*RUN, *changed, "--out", out])
    assert listed in str(e.value) and "--overwrite" in str(e.value)
    assert read(out) == read(finished[0])


def test_logging_options_may_change_on_a_rerun(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    argv = [*RUN, "--out", out, "--keep", "3", "--eval-every", "0", "--checkpoint-every", "5"]
    assert adding_problem.main(argv) == finished[1]


def test_a_second_process_writing_the_same_out_is_refused(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    with training.RunLock(out), pytest.raises(training.RunLockedError, match=r"being written by"):
        adding_problem.main([*RUN, "--out", out])


def test_a_stale_lock_left_by_a_killed_run_is_taken_over(finished, tmp_path, capsys):
    out = copy_of(finished, tmp_path)
    with open(os.path.join(out, "run.lock"), "w") as f:
        f.write("4999999 on elsewhere\n")
    adding_problem.main([*RUN, "--out", out])
    assert "taking over the stale lock" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(out, "run.lock"))


def _damage_latest(out, step):
    state = os.path.join(out, "checkpoints", str(step), "state")
    files = [os.path.join(d, f) for d, _, fs in os.walk(state) for f in fs]
    biggest = max(files, key=os.path.getsize)
    with open(biggest, "r+b") as f:
        f.truncate(os.path.getsize(biggest) // 2)


@pytest.mark.slow
def test_a_corrupted_latest_checkpoint_falls_back_to_the_newest_intact_one(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    _damage_latest(out, 20)
    with pytest.warns(training.CorruptCheckpointWarning, match=r"checkpoints/20 .*trying step 16"):
        adding_problem.main([*RUN, "--out", out])
    # Resumed from step 16 and trained to 20 again: the same numbers as the first time.
    assert read(out) == read(finished[0])
    assert without_timing(read(out, "log.jsonl")) == without_timing(read(finished[0], "log.jsonl"))


def test_no_intact_checkpoint_is_one_error_line(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    for step in (16, 20):
        _damage_latest(out, step)
    with pytest.warns(training.CorruptCheckpointWarning), pytest.raises(SystemExit) as e:
        common.cli(adding_problem.main, [*RUN, "--out", out])
    message = str(e.value.code)
    assert "error: Checkpointer.restore: no intact checkpoint in" in message
    assert "\n" not in message


@pytest.mark.slow
def test_an_interrupted_run_writes_the_metrics_of_an_uninterrupted_one(
    finished, tmp_path, monkeypatch
):
    out = str(tmp_path / "run")

    class KilledAfterStep8(training.Checkpointer):
        def save(self, state, **kw):
            step = super().save(state, **kw)
            if step == 8:
                raise Killed
            return step

    with monkeypatch.context() as m:
        m.setattr(training, "Checkpointer", KilledAfterStep8)
        with pytest.raises(Killed):
            adding_problem.main([*RUN, "--out", out])
    assert not os.path.exists(os.path.join(out, "metrics.json"))
    adding_problem.main([*RUN, "--out", out])
    assert read(out) == read(finished[0])
    assert without_timing(read(out, "log.jsonl")) == without_timing(read(finished[0], "log.jsonl"))


@pytest.mark.slow
def test_a_diverging_run_is_flagged_in_metrics_json_and_on_stderr(tmp_path, capsys):
    out = str(tmp_path / "run")
    adding_problem.main([*RUN, "--lr", "1e6", "--out", out])
    assert read(out)["diverged"] is True
    assert "warning: the run diverged" in capsys.readouterr().err


@pytest.mark.slow
def test_overwrite_starts_afresh_with_the_new_configuration(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    adding_problem.main([*RUN, "--seed", "1", "--overwrite", "--out", out])
    assert read(out)["config"]["seed"] == 1
    assert [r["step"] for r in read(out, "log.jsonl") if r["split"] == "eval"] == [10, 20]


def test_data_marks_one_position_per_half_and_sums_them():
    import jax

    batch = adding_problem.make_batch(jax.random.PRNGKey(0), 50, 10)
    x, y = np.asarray(batch["x"]), np.asarray(batch["y"])
    assert x.shape == (50, 10, 2) and y.shape == (50, 1)
    for row in range(50):
        marked = np.flatnonzero(x[row, :, 1])
        assert len(marked) == 2 and marked[0] < 5 <= marked[1]
        np.testing.assert_allclose(y[row, 0], x[row, marked, 0].sum(), rtol=1e-6)
    # The mean-sum predictor's MSE is Var(u1 + u2) = 1/6.
    big = adding_problem.make_batch(jax.random.PRNGKey(1), 20000, 10)
    assert np.mean((np.asarray(big["y"]) - 1.0) ** 2) == pytest.approx(1 / 6, rel=0.05)


def test_help_documents_the_common_options(capsys):
    with pytest.raises(SystemExit) as e:
        adding_problem.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--cell", "--steps", "--seed", "--out", "--seq-len"):
        assert option in text


def test_rejects_bad_options(tmp_path):
    with pytest.raises(ValueError, match="--seq-len must be >= 2"):
        adding_problem.main(["--seq-len", "1", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        adding_problem.main(["--cell", "transformer", "--out", str(tmp_path)])


@pytest.mark.parametrize("processes", [1, 2, 4])
def test_each_process_draws_its_rows_of_the_same_global_batch(processes):
    import jax
    import jax.numpy as jnp

    from lstm_jax.training import distributed

    key = jax.random.PRNGKey(3)
    whole = adding_problem.make_batch(key, 8, 6)
    layout = distributed.rows_by_process([p for p in range(processes) for _ in range(2)], 8)
    parts = [adding_problem.make_rows(key, jnp.asarray(r, jnp.int32), 6) for r in layout.values()]
    for name in ("x", "y"):
        joined = np.concatenate([np.asarray(part[name]) for part in parts])
        np.testing.assert_array_equal(joined, np.asarray(whole[name]))
    # Rows differ from one another (each has its own key).
    assert len({tuple(np.asarray(whole["x"])[r, :, 0]) for r in range(8)}) == 8
