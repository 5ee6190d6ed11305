import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import lookahead_tagging


def test_runs_end_to_end_and_the_loss_decreases(tmp_path):
    out = str(tmp_path / "run")
    metrics = lookahead_tagging.main(
        [
            "--steps",
            "20",
            "--out",
            out,
            "--seq-len",
            "8",
            "--min-len",
            "5",
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
    )
    for name in ("metrics.json", "log.jsonl", "curves.png"):
        assert os.path.exists(os.path.join(out, name)), name
    assert metrics["final_train_loss"] < metrics["first_train_loss"]
    assert {"accuracy_bidirectional", "accuracy_forward"} <= set(metrics)


def test_tags_are_the_symbol_lookahead_steps_later_or_end():
    config = lookahead_tagging.Config(seq_len=9, min_len=3, num_symbols=5, lookahead=2)
    batch = lookahead_tagging.make_batch(jax.random.PRNGKey(0), config, 20)
    x, y, lengths = (np.asarray(batch[k]) for k in ("x", "y", "lengths"))
    symbols = np.argmax(x, axis=-1)
    for row in range(20):
        n = lengths[row]
        assert 3 <= n <= 9
        for t in range(n):
            want = symbols[row, t + 2] if t + 2 < n else config.num_symbols
            assert y[row, t] == want


# Layouts processes x devices per process of one 4-device mesh.
LAYOUTS = [(1, 4), (2, 2), (4, 1)]


@pytest.mark.parametrize(("processes", "per_process"), LAYOUTS)
def test_each_process_draws_its_rows_of_the_same_global_batch(processes, per_process):
    from lstm_jax.training import distributed

    config = lookahead_tagging.Config(seq_len=6, min_len=2, num_symbols=4, lookahead=2)
    key = jax.random.PRNGKey(7)
    whole = lookahead_tagging.make_batch(key, config, 8)
    devices = [p for p in range(processes) for _ in range(per_process)]
    layout = distributed.rows_by_process(devices, 8)
    assert sorted(layout) == list(range(processes))
    parts = [
        lookahead_tagging.make_rows(key, jnp.asarray(r, jnp.int32), config) for r in layout.values()
    ]
    for name in ("x", "y", "lengths"):
        joined = np.concatenate([np.asarray(part[name]) for part in parts])
        np.testing.assert_array_equal(joined, np.asarray(whole[name]))
    # Each row has its own key: the 8 rows' symbols are not all alike.
    assert len({tuple(row) for row in np.argmax(np.asarray(whole["x"]), -1)}) > 1
