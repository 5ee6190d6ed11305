import json
import os

import jax
import pytest

from lstm_jax import training


def test_train_appends_records_to_jsonl(tiny, tmp_path):
    with training.MetricLogger(tmp_path) as logger:
        _, history = tiny.run(
            6, logger=logger, log_every=2, eval_fn=lambda p: {"x": 1.0}, eval_every=3
        )
    records = training.read_jsonl(tmp_path / "log.jsonl")
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6]
    assert [r["step"] for r in records if r["split"] == "eval"] == [3, 6]
    for r in train:
        assert {"loss", "mae", "grad_norm", "steps_per_s", "examples_per_s", "time"} <= set(r)
    assert [r["step"] for r in history] == [r["step"] for r in records]


def test_non_finite_values_stay_valid_json(tmp_path):
    with training.MetricLogger(tmp_path) as logger:
        logger.log(1, {"loss": float("nan"), "ok": 2.0})
    with open(tmp_path / "log.jsonl") as f:
        record = json.loads(f.readline())
    assert record["loss"] == "nan" and record["ok"] == 2.0


def test_truncate_after_drops_later_records(tmp_path):
    with training.MetricLogger(tmp_path) as logger:
        for s in range(1, 6):
            logger.log(s, {"loss": float(s)})
        logger.truncate_after(3)
        logger.log(4, {"loss": 40.0})
    assert [(r["step"], r["loss"]) for r in training.read_jsonl(tmp_path / "log.jsonl")] == [
        (1, 1.0),
        (2, 2.0),
        (3, 3.0),
        (4, 40.0),
    ]


def test_tensorboard_events_are_written(tmp_path):
    pytest.importorskip("tensorboardX")
    with training.MetricLogger(tmp_path, tensorboard=True) as logger:
        logger.log(1, {"loss": 1.0})
    files = os.listdir(tmp_path / "tensorboard")
    assert any(f.startswith("events.out.tfevents") for f in files)


def test_progress_bar_draws_when_enabled(capsys):
    with training.ProgressBar(4, enabled=True) as bar:
        bar.update(4, loss=0.5, steps_per_s=10.0, examples_per_s=80.0)
    err = capsys.readouterr()
    assert "loss 0.5" in err.out + err.err


class Killed(Exception):
    """Stands for the process being killed."""


def _without_timing(records):
    timing = ("time", "steps_per_s", "examples_per_s")
    return [{k: v for k, v in r.items() if k not in timing} for r in records]


def test_resumed_log_windows_equal_uninterrupted_ones(tiny, tmp_path):
    # Checkpoints every 3 steps, records every 5: killed at step 7, the run resumes from the
    # checkpoint of step 6, inside the window of steps 5..9.
    def killed_at_7(step):
        if step == 7:
            raise Killed
        return tiny.batch(step)

    opt = training.make_optimizer(1e-2, clip_norm=1.0)
    state = training.create_train_state(tiny.init(), opt, jax.random.PRNGKey(0))
    step_fn = training.make_train_step(tiny.loss, opt)
    run = dict(num_steps=10, log_every=5, progress=False)
    with training.MetricLogger(tmp_path / "straight") as logger:
        training.train(state, step_fn, tiny.batch, logger=logger, **run)
    out = tmp_path / "resumed"
    with training.Checkpointer(out / "ckpt", save_every=3) as ckpt:
        with training.MetricLogger(out) as logger, pytest.raises(Killed):
            training.train(state, step_fn, killed_at_7, checkpointer=ckpt, logger=logger, **run)
        assert ckpt.latest_step() == 6
    with training.Checkpointer(out / "ckpt", save_every=3) as ckpt:
        with training.MetricLogger(out) as logger:
            training.train(state, step_fn, tiny.batch, checkpointer=ckpt, logger=logger, **run)
    straight = _without_timing(training.read_jsonl(tmp_path / "straight" / "log.jsonl"))
    resumed = _without_timing(training.read_jsonl(out / "log.jsonl"))
    assert [r["step"] for r in resumed] == [5, 10]
    assert resumed == straight


def test_a_finished_run_run_again_writes_its_final_eval_once(tiny, tmp_path):
    evals = []

    def eval_fn(params):
        evals.append(1)
        return {"x": 1.0}

    for _ in range(2):
        with (
            training.Checkpointer(tmp_path / "ckpt", save_every=0) as ckpt,
            training.MetricLogger(tmp_path) as logger,
        ):
            _, history = tiny.run(4, checkpointer=ckpt, logger=logger, log_every=2, eval_fn=eval_fn)
    assert len(evals) == 2  # evaluated again ...
    assert history == [{"step": 4, "split": "eval", "x": 1.0}]
    records = training.read_jsonl(tmp_path / "log.jsonl")
    assert [(r["step"], r["split"]) for r in records] == [(2, "train"), (4, "train"), (4, "eval")]


def test_the_first_train_record_has_the_loss_before_any_update(tiny):
    _, history = tiny.run(4, log_every=2)
    want, _ = tiny.loss(tiny.init(), tiny.batch(0), None)
    assert history[0]["initial_loss"] == pytest.approx(float(want), rel=1e-6)
    assert "initial_loss" not in history[1]
