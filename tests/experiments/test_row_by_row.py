"""Row-by-row MNIST / Fashion-MNIST on TFDS mock data and on tiny IDX files, and the message
when the data are absent."""

from __future__ import annotations

import gzip
import json
import os
import struct

import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import row_by_row
from lstm_jax import data
from lstm_jax.data import fashion_mnist_idx

TINY = ["--steps", "4", "--hidden", "8", "--batch-size", "4", "--eval-size", "6",
        "--log-every", "2", "--eval-every", "2", "--no-progress"]  # fmt: skip


def write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("dataset", row_by_row.DATASETS)
def test_mock_data_end_to_end(tmp_path, dataset):
    out = tmp_path / "run"
    with tfds.testing.mock_data(num_examples=12):
        metrics = row_by_row.main(
            ["--dataset", dataset, "--out", str(out), "--data-dir", str(tmp_path / "tfds"), *TINY]
        )
    for name in ("metrics.json", "log.jsonl", "curves.png"):
        assert os.path.getsize(out / name) > 0, name
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["config"]["dataset"] == dataset and stored["metrics"]["source"] == dataset
    assert stored["metrics"]["test_images"] == 6
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert stored["metrics"]["published"] == row_by_row.PUBLISHED[dataset]


def test_fashion_mnist_falls_back_to_idx_files(tmp_path, monkeypatch):
    files = tmp_path / "files"
    files.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 5)):
        image_file, label_file = fashion_mnist_idx.FILES[split]
        write_idx(files / image_file, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(files / label_file, rng.integers(0, 10, (n,), dtype=np.uint8))
    monkeypatch.setenv(fashion_mnist_idx.DIR_ENV, str(files))
    metrics = row_by_row.main(
        ["--dataset", "fashion_mnist", "--out", str(tmp_path / "run"),
         "--data-dir", str(tmp_path / "tfds"), *TINY]
    )  # fmt: skip
    assert metrics["source"] == "fashion_mnist_idx" and metrics["test_images"] == 5


@pytest.mark.parametrize("dataset", row_by_row.DATASETS)
def test_absent_data_stop_with_the_data_layer_message(tmp_path, monkeypatch, dataset):
    monkeypatch.setenv(fashion_mnist_idx.DIR_ENV, str(tmp_path / "nothing here"))
    with pytest.raises(data.DataNotFoundError, match="download=True") as e:
        row_by_row.main(["--dataset", dataset, "--out", str(tmp_path / "run"),
                         "--data-dir", str(tmp_path / "tfds"), *TINY])  # fmt: skip
    assert ("apt-get install dataset-fashion-mnist" in str(e.value)) == (dataset == "fashion_mnist")


def test_rows_are_scaled_to_unit_interval():
    example = {"image": np.full((28, 28, 1), 255, np.uint8), "label": 7}
    rows = row_by_row.to_rows(example)
    assert rows["x"].shape == (28, 28) and rows["x"].dtype == np.float32
    np.testing.assert_array_equal(rows["x"], 1.0)
    assert rows["label"] == 7


@pytest.mark.parametrize(("processes", "per_process"), [(1, 4), (2, 2), (4, 1)])
def test_each_process_reads_its_rows_of_the_same_global_batch(processes, per_process):
    from lstm_jax.training import distributed

    source = [{"image": np.full((28, 28, 1), 20 * i, np.uint8), "label": i % 10} for i in range(10)]
    config = row_by_row.Config(batch_size=4, seed=2)
    whole = row_by_row.train_batches(source, config)
    layout = distributed.rows_by_process(
        [p for p in range(processes) for _ in range(per_process)], 4
    )
    shards = {p: row_by_row.train_batches(source, config, (p, processes)) for p in layout}
    for step in range(3):  # step 2 crosses into the second epoch
        for p, rows in layout.items():
            for field in ("x", "label"):
                np.testing.assert_array_equal(shards[p][step][field], whole[step][field][rows])
    assert len({tuple(whole[step]["label"]) for step in range(3)}) > 1
