"""The IMDB sentiment experiment on TFDS mock data, its pieces by hand, and the message when
the data are absent."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import imdb_sentiment as imdb
from lstm_jax import data

TINY = ["--steps", "4", "--hidden", "8", "--embed", "4", "--vocab", "50", "--max-len", "24",
        "--batch-size", "4", "--eval-size", "6", "--log-every", "2", "--eval-every", "2",
        "--no-progress"]  # fmt: skip


def test_mock_data_end_to_end(tmp_path):
    out = tmp_path / "run"
    with tfds.testing.mock_data(num_examples=10):
        metrics = imdb.main(["--out", str(out), "--data-dir", str(tmp_path / "tfds"), *TINY])
    for name in ("metrics.json", "log.jsonl", "curves.png"):
        assert os.path.getsize(out / name) > 0, name
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["config"]["max_len"] == 24 and stored["metrics"]["test_reviews"] == 6
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert max(stored["metrics"]["boundaries"]) <= 24


def test_tokens_drop_html_breaks_and_lower_case():
    assert imdb.tokens(b"Great film.<br /><br />Loved it!") == [
        "great", "film", ".", "loved", "it", "!",
    ]  # fmt: skip


def test_encode_keeps_the_last_tokens_and_never_an_empty_row():
    vocab = data.build_vocabulary([["a", "b", "c"]])
    encoded = imdb.encode_all([["a", "b", "c"], []], vocab, max_len=2)
    np.testing.assert_array_equal(encoded[0]["ids"], vocab.encode(["b", "c"]))
    np.testing.assert_array_equal(encoded[1]["ids"], [data.UNK_ID])


def test_with_labels_looks_up_by_index_and_weights_out_filled_rows():
    batch = {"ids": np.zeros((3, 2), np.int32), data.SEQ_LENGTHS: np.array([2, 1, 0], np.int32),
             data.INDEX: np.array([2, 0, -1])}  # fmt: skip
    got = imdb.with_labels(batch, np.array([1, 0, 0], np.int32))
    np.testing.assert_array_equal(got["label"], [0, 1, 0])
    np.testing.assert_array_equal(got["weight"], [1.0, 1.0, 0.0])


def test_absent_data_stop_with_the_data_layer_message(tmp_path):
    with pytest.raises(data.DataNotFoundError, match="download=True"):
        imdb.main(["--out", str(tmp_path / "run"), "--data-dir", str(tmp_path / "tfds"), *TINY])


def test_distributed_is_refused():
    # Its batches are not sliced by process: every process would read the whole batch.
    with pytest.raises(ValueError, match="--distributed"):
        imdb.parse_args(["--distributed"])
