import os

import jax
import numpy as np

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
