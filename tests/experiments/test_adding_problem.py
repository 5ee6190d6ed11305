import json
import os

import numpy as np
import pytest

from experiments import adding_problem

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


def test_runs_end_to_end_and_the_loss_decreases(tmp_path):
    out = str(tmp_path / "run")
    metrics = adding_problem.main(["--steps", "20", "--out", out, *TINY])
    for name in ("metrics.json", "log.jsonl", "curves.png"):
        assert os.path.exists(os.path.join(out, name)), name
    with open(os.path.join(out, "metrics.json")) as f:
        saved = json.load(f)
    assert saved["config"]["seq_len"] == 8 and saved["config"]["cell"] == "lstm"
    assert {"test_mse", "solved_fraction", "baseline_mse"} <= set(saved["metrics"])
    assert metrics["final_train_loss"] < metrics["first_train_loss"]


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
