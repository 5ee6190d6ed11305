"""The forecasting experiment end to end on a tiny setting, and its pieces by hand."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("statsmodels")

from experiments import forecast

TINY = ["--hidden", "8", "--batch-size", "16", "--lr", "1e-2", "--log-every", "5",
        "--eval-every", "10", "--no-progress"]  # fmt: skip


def test_sunspots_end_to_end_and_the_loss_decreases(tmp_path):
    out = tmp_path / "run"
    metrics = forecast.main(
        ["--series", "sunspots", "--steps", "20", "--window", "12", "--horizon", "6",
         "--out", str(out), "--data-dir", str(tmp_path / "tfds"), *TINY]
    )  # fmt: skip
    for name in ("metrics.json", "log.jsonl", "curves.png", "forecast.png"):
        assert os.path.getsize(out / name) > 0, name
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["config"]["series"] == "sunspots" and stored["config"]["horizon"] == 6
    for key in ("rmse_network", "rmse_seasonal_naive", "rmse_naive", "rmse_sarimax"):
        assert np.isfinite(stored["metrics"][key]), key
    assert stored["metrics"]["held_out"] == {"from": "2003", "to": "2008", "steps": 6,
                                             "observed": 6}  # fmt: skip
    assert metrics["final_train_loss"] < metrics["first_train_loss"]


def test_co2_defaults_without_sarimax(tmp_path):
    out = tmp_path / "run"
    metrics = forecast.main(
        ["--steps", "2", "--window", "20", "--no-sarimax", "--out", str(out),
         "--data-dir", str(tmp_path / "tfds"), *TINY]
    )  # fmt: skip
    assert metrics["held_out"]["steps"] == 104 and metrics["held_out"]["to"] == "2001-12-29"
    assert "rmse_sarimax" not in metrics and metrics["sarimax_spec"] is None


def test_seasonal_naive_repeats_the_last_season():
    history = np.array([9.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(forecast.seasonal_naive(history, 7, 3), [1, 2, 3, 1, 2, 3, 1])


def test_windows_are_offsets_from_their_last_value():
    values = np.array([1.0, 2.0, 4.0, 7.0, 11.0, 16.0])
    windows = forecast.Windows(values, window=3, horizon=2, scale=2.0)
    assert len(windows) == 2
    example = windows[1]
    np.testing.assert_allclose(example["x"][:, 0], [(2 - 7) / 2, (4 - 7) / 2, 0.0])
    np.testing.assert_allclose(example["y"], [(11 - 7) / 2, (16 - 7) / 2])
    with pytest.raises(IndexError):
        windows[2]


def test_offset_scale_by_hand():
    # Offsets at k=1: 1, 1; at k=2: 2. RMS = sqrt((1 + 1 + 4) / 3).
    assert forecast.offset_scale(np.array([0.0, 1.0, 2.0]), 2) == pytest.approx(np.sqrt(2.0))


def test_rmse_skips_unobserved_steps():
    got = forecast.rmse(np.array([1.0, 5.0, 3.0]), np.array([0.0, 0.0, 0.0]),
                        np.array([True, False, True]))  # fmt: skip
    assert got == pytest.approx(np.sqrt(5.0))


def test_fourier_terms_have_the_period():
    t = np.arange(10.0)
    terms = forecast.fourier_terms(t, 2, 5.0)
    assert terms.shape == (10, 4)
    np.testing.assert_allclose(terms[:5], terms[5:], atol=1e-12)
    a = 2 * np.pi / 5
    np.testing.assert_allclose(terms[1], [np.sin(a), np.sin(2 * a), np.cos(a), np.cos(2 * a)])


def test_window_too_long_for_the_series_is_refused(tmp_path):
    with pytest.raises(ValueError, match="must fit"):
        forecast.main(
            [
                "--series",
                "sunspots",
                "--window",
                "300",
                "--steps",
                "1",
                "--out",
                str(tmp_path / "run"),
                "--data-dir",
                str(tmp_path / "tfds"),
            ]
        )


@pytest.mark.parametrize(("processes", "per_process"), [(1, 4), (2, 2), (4, 1)])
def test_each_process_reads_its_rows_of_the_same_global_batch(processes, per_process):
    from lstm_jax.training import distributed

    windows = forecast.Windows(np.arange(20.0) ** 1.5, window=3, horizon=2, scale=1.0)
    config = forecast.Config(batch_size=8, seed=1)
    whole = forecast.train_batches(windows, config)
    layout = distributed.rows_by_process(
        [p for p in range(processes) for _ in range(per_process)], 8
    )
    shards = {p: forecast.train_batches(windows, config, (p, processes)) for p in layout}
    for step in range(3):  # 16 windows: step 2 is in the second epoch
        for p, rows in layout.items():
            for field in ("x", "y"):
                np.testing.assert_array_equal(shards[p][step][field], whole[step][field][rows])
    assert len({tuple(whole[step]["x"][:, 0, 0]) for step in range(3)}) == 3


def test_a_batch_of_more_rows_than_windows_is_full_and_shards():
    windows = forecast.Windows(np.arange(8.0) ** 2, window=3, horizon=2, scale=1.0)  # 4 windows
    config = forecast.Config(batch_size=8)
    whole = forecast.train_batches(windows, config)[0]["y"]
    assert whole.shape == (8, 2)
    # Every window once in the first 4 rows (one epoch), then the next epoch's.
    assert len({tuple(row) for row in whole[:4]}) == 4
    halves = [forecast.train_batches(windows, config, (p, 2))[0]["y"] for p in range(2)]
    np.testing.assert_array_equal(np.concatenate(halves), whole)
