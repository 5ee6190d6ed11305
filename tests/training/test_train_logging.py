import json
import os

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
