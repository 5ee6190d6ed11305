"""The pure pieces of multi-process runs, without starting processes: which rows of the global
batch each process holds in a layout, the argument checks, who writes. The real multi-process
runs are in test_multiprocess.py (slow)."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from lstm_jax import training
from lstm_jax.training import distributed

LAYOUTS = [(1, 4), (2, 2), (4, 1)]  # (processes, devices per process)


@pytest.mark.parametrize("processes, per_process", LAYOUTS)
def test_the_processes_rows_partition_the_global_batch_in_contiguous_blocks(processes, per_process):
    devices = [p for p in range(processes) for _ in range(per_process)]
    rows = distributed.rows_by_process(devices, 12)
    assert sorted(rows) == list(range(processes))
    np.testing.assert_array_equal(np.concatenate([rows[p] for p in range(processes)]), range(12))
    local = 12 // processes
    for p in range(processes):
        np.testing.assert_array_equal(rows[p], np.arange(p * local, (p + 1) * local))


def test_interleaved_devices_give_a_process_its_devices_rows_in_ascending_order():
    rows = distributed.rows_by_process([0, 1, 0, 1], 8)
    np.testing.assert_array_equal(rows[0], [0, 1, 4, 5])
    np.testing.assert_array_equal(rows[1], [2, 3, 6, 7])


def test_one_process_holds_every_row_of_the_mesh():
    mesh = training.make_mesh()
    rows = 3 * mesh.devices.size
    layout = distributed.rows_by_process([d.process_index for d in mesh.devices.flat], rows)
    np.testing.assert_array_equal(distributed.process_rows(mesh, rows), layout[0])
    np.testing.assert_array_equal(layout[0], range(rows))


def test_rows_that_do_not_divide_among_the_devices_are_refused():
    with pytest.raises(ValueError, match=r"global_rows \(7\) must divide evenly among the 2"):
        distributed.rows_by_process([0, 1], 7)
    with pytest.raises(ValueError, match="global_rows must be an int >= 1, got 0"):
        distributed.process_rows(training.make_mesh(), 0)


@pytest.mark.parametrize(
    "args, match",
    [
        (
            ("127.0.0.1:1234", 2, 2),
            r"--process-id must be between 0 and --num-processes - 1 = 1, got 2",
        ),
        (("127.0.0.1:1234", 2, -1), r"--process-id must be >= 0, got -1"),
        (("127.0.0.1:1234", 0, 0), r"--num-processes must be >= 1, got 0"),
        (("127.0.0.1:1234", 2, None), r"give both --num-processes and --process-id"),
        (("127.0.0.1", 2, 0), r"coordinator must be HOST:PORT .* got '127.0.0.1'"),
        (("host:99999", 2, 0), r"coordinator must be HOST:PORT"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_contacted(args, match):
    with pytest.raises(ValueError, match=match):
        distributed.initialize(*args, timeout=1)


def test_a_process_id_beyond_the_count_fails_on_the_command_line(tmp_path):
    from experiments import adding_problem

    argv = ["--distributed", "--coordinator", "127.0.0.1:1", "--num-processes", "2"]
    with pytest.raises(ValueError, match="--process-id must be between 0 and"):
        adding_problem.main([*argv, "--process-id", "2", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--coordinator and --num-processes need --distributed"):
        adding_problem.main(["--num-processes", "2", "--out", str(tmp_path)])


def test_the_join_timeout_message_names_the_address_and_the_process():
    text = distributed.join_timeout_message("10.0.0.1:1234", 4, 3, 2.5)
    assert "process 3 of 4" in text and "coordinator 10.0.0.1:1234 within 2.5 s" in text
    assert "\n" not in text


def test_agreement_is_trivial_with_one_process():
    distributed.check_agreement(None, {"anything": 1}, timeout=1)
    distributed.sync("single process: returns at once")


def test_only_process_0_writes(tmp_path, monkeypatch):
    from experiments import common

    assert distributed.is_writer()
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    assert not distributed.is_writer()
    with training.MetricLogger(tmp_path / "run") as logger:
        logger.truncate_after(0)
        logger.log(1, {"loss": 1.0})
    assert not os.path.exists(tmp_path / "run")

    class Config:
        out = str(tmp_path)

    assert common.write_metrics(Config(), {"loss": 1.0}) == str(tmp_path / "metrics.json")
    history = [{"step": 1, "split": "train", "loss": 1.0}]
    common.plot_curves(
        history, str(tmp_path / "c.png"), panels=[("loss", [("train", "loss")])], title="t"
    )
    assert os.listdir(tmp_path) == []
    # clear_run on another process deletes nothing: process 0 does.
    (tmp_path / "log.jsonl").write_text(json.dumps({"step": 1}) + "\n")
    training.clear_run(tmp_path)
    assert os.listdir(tmp_path) == ["log.jsonl"]


def test_a_logger_told_to_write_writes_on_any_process(tmp_path, monkeypatch):
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    with training.MetricLogger(tmp_path, write=True) as logger:
        logger.log(1, {"loss": 2.0})
    assert [r["loss"] for r in training.read_history(tmp_path)] == [2.0]
