import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import copy_task


def test_runs_end_to_end_and_the_loss_decreases(tmp_path):
    out = str(tmp_path / "run")
    metrics = copy_task.main(
        [
            "--steps",
            "20",
            "--out",
            out,
            "--seq-len",
            "4",
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
            "--cell",
            "gru",
            "--no-progress",
        ]
    )
    for name in ("metrics.json", "log.jsonl", "curves.png"):
        assert os.path.exists(os.path.join(out, name)), name
    assert metrics["final_train_loss"] < metrics["first_train_loss"]
    assert metrics["baseline_ce"] == 10 * math.log(8) / 24
    assert 0.0 <= metrics["recall_accuracy"] <= 1.0


def test_data_follows_the_arjovsky_layout():
    t = 6
    batch = copy_task.make_batch(jax.random.PRNGKey(0), 3, t)
    symbols = np.argmax(np.asarray(batch["x"]), axis=-1)
    y = np.asarray(batch["y"])
    assert symbols.shape == y.shape == (3, t + 20)
    data = symbols[:, :10]
    assert np.all((data >= 1) & (data <= 8))
    np.testing.assert_array_equal(symbols[:, 10 : 10 + t - 1], 0)
    np.testing.assert_array_equal(symbols[:, 10 + t - 1], 9)
    np.testing.assert_array_equal(symbols[:, 10 + t :], 0)
    np.testing.assert_array_equal(y[:, : t + 10], 0)
    np.testing.assert_array_equal(y[:, t + 10 :], data)


# Layouts processes x devices per process of one 4-device mesh.
LAYOUTS = [(1, 4), (2, 2), (4, 1)]


@pytest.mark.parametrize(("processes", "per_process"), LAYOUTS)
def test_each_process_draws_its_rows_of_the_same_global_batch(processes, per_process):
    from lstm_jax.training import distributed

    key = jax.random.PRNGKey(5)
    whole = copy_task.make_batch(key, 8, 3)
    devices = [p for p in range(processes) for _ in range(per_process)]
    layout = distributed.rows_by_process(devices, 8)
    assert sorted(layout) == list(range(processes))
    parts = [copy_task.make_rows(key, jnp.asarray(r, jnp.int32), 3) for r in layout.values()]
    for name in ("x", "y"):
        joined = np.concatenate([np.asarray(part[name]) for part in parts])
        np.testing.assert_array_equal(joined, np.asarray(whole[name]))
    # Each row has its own key: the 8 rows' data symbols are not all alike.
    assert len({tuple(row) for row in np.asarray(whole["y"])[:, -10:]}) == 8
