import math
import os

import jax
import numpy as np

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
